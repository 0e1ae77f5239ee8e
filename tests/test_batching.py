"""The batching queue on the real MiniLM, in process: batches cut by the core's rule, a new
request served after at most one batch of another, and a server that says 503 until its model
is loaded."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.server_process import QUERY_INSTRUCTION
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.serve.app import EmbeddingService, create_app
from youtu_rag.serve.batching import Batcher, QueueFullError, ShuttingDownError
from youtu_rag.serve.metrics import ServerMetrics


def histogram_sum_and_count(metrics: ServerMetrics, name: str) -> tuple[float, float]:
    values = {
        sample.name: sample.value
        for family in metrics.registry.collect()
        if family.name == name
        for sample in family.samples
    }
    return values[f"{name}_sum"], values[f"{name}_count"]


async def test_batches_follow_the_cores_token_budget(minilm: YoutuEmbedder) -> None:
    # 20 rows of the same width: the budget allows 64 // width of them per forward pass.
    embedder = YoutuEmbedder(MINILM, device="cpu", batch_size=32, max_batch_tokens=64)
    texts = [f"the same length text number {i}" for i in range(20)]
    width = embedder.token_counts(texts).lengths[0]
    assert set(embedder.token_counts(texts).lengths) == {width}
    per_batch = embedder.rows_per_batch(width)
    assert 1 < per_batch < 20

    metrics = ServerMetrics()
    with ThreadPoolExecutor(1) as model_thread:
        batcher = Batcher(embedder, model_thread, metrics, max_wait_s=0, max_queued_texts=100)
        job = batcher.submit(texts, embedder.token_counts(texts).lengths, "", "document")
        batcher.drain()
        await batcher.run()
    vectors = await job.future
    assert np.abs(vectors - minilm.encode_documents(texts)).max() <= 1e-6
    assert batcher.batches == -(-20 // per_batch)
    assert histogram_sum_and_count(metrics, "youtu_rag_batch_texts") == (20, batcher.batches)


async def test_a_new_request_waits_behind_at_most_one_batch() -> None:
    embedder = YoutuEmbedder(
        MINILM, device="cpu", batch_size=4, query_instruction=QUERY_INSTRUCTION
    )
    bulk_texts = [f"passage {i} about retrieval" for i in range(48)]
    question = ["What is dynamic batching?"]
    metrics = ServerMetrics()
    with ThreadPoolExecutor(1) as model_thread:
        batcher = Batcher(embedder, model_thread, metrics, max_wait_s=0, max_queued_texts=100)
        worker = asyncio.create_task(batcher.run())
        bulk = batcher.submit(
            bulk_texts,
            embedder.token_counts(bulk_texts).lengths,
            embedder.document_prefix,
            "document",
        )
        while batcher.batches < 2:  # the bulk request is being embedded, 4 texts at a time
            await asyncio.sleep(0.001)
        in_flight = batcher.batches
        query = batcher.submit(
            question,
            embedder.token_counts(question, embedder.query_prefix).lengths,
            embedder.query_prefix,
            "query",
        )
        vector = await query.future
        # The batch running when it arrived, then its own; the worker may have started the
        # next one by the time this coroutine resumes.
        assert batcher.batches - in_flight <= 2
        assert not bulk.future.done()
        assert batcher.queued_texts > 24
        batcher.drain()
        await worker
    assert bulk.future.done()
    assert np.abs(vector - embedder.encode_queries(question)).max() <= 1e-6
    assert np.abs(bulk.future.result() - embedder.encode_documents(bulk_texts)).max() <= 1e-6
    # Each batch held one prefix: the query never shared a batch with documents. After the
    # query's batch, four of the bulk's batches take half the rows (2): 2 + 1 + 4 + 8 batches.
    texts, batches = histogram_sum_and_count(metrics, "youtu_rag_batch_texts")
    assert (texts, batches) == (49, batcher.batches) and batches == 15


async def test_small_requests_get_batches_of_their_own_in_turn_with_a_large_one() -> None:
    """Queries and documents share a prefix here (MiniLM has no instruction), so only the turn
    rule keeps a short request out of a full batch of the large request's documents; the large
    request still gets every other batch however many small ones wait, in half batches while
    they come."""
    embedder = YoutuEmbedder(MINILM, device="cpu", batch_size=4)
    bulk_texts = [f"passage {i} about retrieval, 检索段落 {i}" for i in range(40)]
    smalls = [[f"question {i}", f"问题 {i}"] for i in range(6)]
    batches: list[list[str]] = []
    encode = embedder.encode

    def recording_encode(texts: list[str], prefix: str = "") -> np.ndarray:
        batches.append(list(texts))
        return encode(texts, prefix)

    embedder.encode = recording_encode  # type: ignore[method-assign]
    with ThreadPoolExecutor(1) as model_thread:
        batcher = Batcher(
            embedder, model_thread, ServerMetrics(), max_wait_s=0, max_queued_texts=100
        )
        worker = asyncio.create_task(batcher.run())
        bulk = batcher.submit(bulk_texts, embedder.token_counts(bulk_texts).lengths, "", "document")
        while batcher.batches < 2:
            await asyncio.sleep(0.001)
        first = len(batches)
        jobs = [
            batcher.submit(texts, embedder.token_counts(texts).lengths, "", "query")
            for texts in smalls
        ]
        vectors = [await job.future for job in jobs]
        batcher.drain()
        await worker
    after = batches[first:]
    if after and not set(after[0]) & {text for texts in smalls for text in texts}:
        after = after[1:]  # the large batch already formed when the small requests came
    small_texts = {text for texts in smalls for text in texts}
    kinds = ["small" if set(batch) <= small_texts else "large" for batch in after]
    assert all(set(batch) <= small_texts or not set(batch) & small_texts for batch in after)
    # Small and large alternate while both wait (the six small requests fill three batches of
    # four), and a small text never rides in a large batch.
    assert kinds == ["small", "large"] * 3 + ["large"] * (len(kinds) - 6), kinds
    # While small requests come, the large one goes in half batches (2 rows, not 4); four
    # batches after the last small one, in full batches again.
    assert [len(batch) for batch in after] == [4, 2] * 3 + [2] * 3 + [4] * 5
    for texts, got in zip(smalls, vectors, strict=True):
        assert np.abs(got - encode(texts)).max() <= 1e-6
    assert np.abs(bulk.future.result() - encode(bulk_texts)).max() <= 1e-6


async def test_queue_limit_and_draining(minilm: YoutuEmbedder) -> None:
    with ThreadPoolExecutor(1) as model_thread:
        batcher = Batcher(minilm, model_thread, ServerMetrics(), max_wait_s=60, max_queued_texts=3)
        first = batcher.submit(["a", "b"], [3, 3], "", "document")
        with pytest.raises(QueueFullError, match="2 texts are queued"):
            batcher.submit(["c", "d"], [3, 3], "", "document")
        batcher.withdraw(first)
        assert first.future.cancelled() and batcher.queued_texts == 0
        second = batcher.submit(["c", "d"], [3, 3], "", "document")
        worker = asyncio.create_task(batcher.run())
        await asyncio.sleep(0.05)  # a partial batch waits (up to 60 s) for more texts
        assert not second.future.done()
        batcher.drain()  # ... but not once the server stops
        await worker
        with pytest.raises(ShuttingDownError):
            batcher.submit(["e"], [3], "", "document")
    assert second.future.result().shape == (2, 384)


def test_health_is_503_until_the_model_is_loaded_and_once_stopping() -> None:
    gate = threading.Event()

    def load() -> YoutuEmbedder:
        gate.wait(timeout=60)
        return YoutuEmbedder(MINILM, device="cpu")

    service = EmbeddingService(load)
    with TestClient(create_app(service)) as client:
        for response in (
            client.get("/health"),
            client.post("/v1/embeddings", json={"input": "x"}),
            client.get("/v1/models"),
        ):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "model_loading"
        gate.set()
        deadline = time.monotonic() + 60
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = client.post("/v1/embeddings", json={"input": "x"})
        assert answer.status_code == 200 and len(answer.json()["data"][0]["embedding"]) == 384
        # A stop signal: probes see 503 at once, so a load balancer stops sending work.
        service.begin_drain()
        while client.get("/health").status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client.get("/health").json()["error"]["code"] == "shutting_down"
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 503


def test_a_model_that_fails_to_load_is_reported() -> None:
    failures: list[BaseException] = []

    def load() -> YoutuEmbedder:
        raise OSError("no such model: /nowhere")

    service = EmbeddingService(load)
    service.on_load_failure = failures.append
    with TestClient(create_app(service)) as client:
        deadline = time.monotonic() + 30
        while not failures:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        response = client.get("/health")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_load_failed" and "/nowhere" in error["message"]
    assert isinstance(failures[0], OSError)
