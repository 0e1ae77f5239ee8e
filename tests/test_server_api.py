"""`youtu-rag serve` through the clients people use: the openai SDK, LangChain's
OpenAIEmbeddings, raw HTTP; and 32 clients at once, batched together."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
from langchain_openai import OpenAIEmbeddings
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from youtu_rag import MINILM, YoutuEmbedder

DOCUMENTS = [
    "The weather is lovely today.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "He drove to the stadium.",
    "查询出该时间范围内到期的账户冻结列表。",
]
QUERIES = ["What's the weather like?", "How do plants make food?"]
TOLERANCE = 1e-6


def max_difference(vectors: Any, expected: np.ndarray) -> float:
    return float(np.abs(np.asarray(vectors, dtype=np.float64) - expected).max())


def test_openai_sdk_gets_the_in_process_vectors(
    youtu_server: str, minilm_instructed: YoutuEmbedder
) -> None:
    client = OpenAI(base_url=f"{youtu_server}/v1", api_key="not-checked", max_retries=0)
    documents = minilm_instructed.encode_documents(DOCUMENTS)
    queries = minilm_instructed.encode_queries(QUERIES)
    assert max_difference(queries, minilm_instructed.encode_documents(QUERIES)) > 1e-2

    # The SDK asks for base64 by default and decodes it itself.
    response = client.embeddings.create(model=MINILM, input=DOCUMENTS)
    assert [item.index for item in response.data] == [0, 1, 2, 3]
    assert max_difference([item.embedding for item in response.data], documents) <= TOLERANCE
    assert response.model == MINILM
    tokens = sum(minilm_instructed.token_counts(DOCUMENTS).lengths)
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens

    as_float = client.embeddings.create(model=MINILM, input=DOCUMENTS, encoding_format="float")
    assert max_difference([item.embedding for item in as_float.data], documents) <= TOLERANCE

    by_field = client.embeddings.create(
        model=MINILM, input=QUERIES, extra_body={"input_type": "query"}
    )
    by_alias = client.embeddings.create(model=f"{MINILM}:query", input=QUERIES)
    for response in (by_field, by_alias):
        assert max_difference([item.embedding for item in response.data], queries) <= TOLERANCE
    query_tokens = sum(
        minilm_instructed.token_counts(QUERIES, minilm_instructed.query_prefix).lengths
    )
    assert by_alias.usage.prompt_tokens == query_tokens
    single = client.embeddings.create(model=f"{MINILM}:document", input=DOCUMENTS[1])
    assert max_difference(single.data[0].embedding, documents[1:2]) <= TOLERANCE


def test_base64_decodes_to_the_float_answer(youtu_server: str) -> None:
    body = {"model": MINILM, "input": DOCUMENTS, "input_type": "query"}
    floats = httpx.post(f"{youtu_server}/v1/embeddings", json=body).json()
    encoded = httpx.post(
        f"{youtu_server}/v1/embeddings", json={**body, "encoding_format": "base64"}
    ).json()
    for as_float, as_base64 in zip(floats["data"], encoded["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(as_base64["embedding"]), dtype="<f4")
        assert decoded.shape == (384,)
        assert max_difference(decoded, np.asarray(as_float["embedding"])) <= 1e-7
    assert floats["usage"] == encoded["usage"]


def test_langchain_openai_embeddings(youtu_server: str, minilm_instructed: YoutuEmbedder) -> None:
    options: dict[str, Any] = {
        "base_url": f"{youtu_server}/v1",
        "api_key": "not-checked",
        "check_embedding_ctx_length": False,
        "max_retries": 0,
    }
    documents = OpenAIEmbeddings(model=MINILM, **options)
    queries = OpenAIEmbeddings(model=f"{MINILM}:query", **options)
    assert (
        max_difference(
            documents.embed_documents(DOCUMENTS), minilm_instructed.encode_documents(DOCUMENTS)
        )
        <= TOLERANCE
    )
    assert (
        max_difference(
            queries.embed_query(QUERIES[0]), minilm_instructed.encode_queries(QUERIES[:1])
        )
        <= TOLERANCE
    )


def test_models_health_and_metrics(youtu_server: str, minilm_instructed: YoutuEmbedder) -> None:
    models = httpx.get(f"{youtu_server}/v1/models").json()
    ids = [entry["id"] for entry in models["data"]]
    assert ids == [MINILM, f"{MINILM}:query", f"{MINILM}:document"]
    served = models["data"][0]
    assert (served["dimension"], served["max_length"]) == (384, 256)
    assert served["query_prefix"] == minilm_instructed.query_prefix
    assert httpx.get(f"{youtu_server}/health").json() == {"status": "ok", "model": MINILM}
    metrics = httpx.get(f"{youtu_server}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(metrics.text)}
    assert {
        "youtu_rag_requests",
        "youtu_rag_texts",
        "youtu_rag_tokens",
        "youtu_rag_batch_texts",
        "youtu_rag_batch_requests",
        "youtu_rag_queue_wait_seconds",
        "youtu_rag_request_seconds",
        "youtu_rag_queued_texts",
    } <= names


# --- 32 clients at once --------------------------------------------------------------------

CLIENTS = 32
REQUESTS_PER_CLIENT = 20
SENTENCE = (
    "retrieval augmented generation embeds every passage once and each question when it is "
    "asked then the nearest passages become the context of a chat model that answers with "
    "sources so the quality of the embedding decides what the model gets to read"
)
WORDS = SENTENCE.split()
# Texts of 1 to 12 words, so batches mix short and long rows and the test stays quick.
POOL = [" ".join(WORDS[i % 7 : i % 7 + 1 + (i * 5) % 12]) for i in range(48)]


def request_of(client: int, number: int) -> tuple[list[int], str]:
    """Which pool texts, and which input type, this request sends."""
    seed = client * REQUESTS_PER_CLIENT + number
    count = 1 + (seed * 7) % 4
    return [(seed * 13 + k * 5) % len(POOL) for k in range(count)], (
        "query" if seed % 3 == 0 else "document"
    )


def histogram(metrics_text: str, name: str) -> dict[str, float]:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == name:
            return {
                sample.name.removeprefix(name) + sample.labels.get("le", ""): sample.value
                for sample in family.samples
            }
    raise AssertionError(f"no {name} in /metrics")


def test_32_concurrent_clients_get_the_sequential_answers(
    youtu_server: str, minilm_instructed: YoutuEmbedder
) -> None:
    expected = {
        "document": minilm_instructed.encode_documents(POOL),
        "query": minilm_instructed.encode_queries(POOL),
    }
    before = histogram(httpx.get(f"{youtu_server}/metrics").text, "youtu_rag_batch_requests")

    def client_run(client: int) -> list[tuple[list[int], str, int, Any]]:
        answers = []
        with httpx.Client(base_url=youtu_server, timeout=120) as http:
            for number in range(REQUESTS_PER_CLIENT):
                indexes, input_type = request_of(client, number)
                response = http.post(
                    "/v1/embeddings",
                    json={
                        "input": [POOL[i] for i in indexes],
                        "input_type": input_type,
                        "encoding_format": "base64",
                    },
                )
                answers.append((indexes, input_type, response.status_code, response.json()))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [answer for answers in pool.map(client_run, range(CLIENTS)) for answer in answers]

    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    worst = 0.0
    for indexes, input_type, status, body in results:
        assert status == 200, body
        assert [item["index"] for item in body["data"]] == list(range(len(indexes)))
        got = np.stack(
            [
                np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
                for item in body["data"]
            ]
        )
        worst = max(worst, max_difference(got, expected[input_type][indexes]))
    assert worst <= TOLERANCE

    after = histogram(httpx.get(f"{youtu_server}/metrics").text, "youtu_rag_batch_requests")
    batches = after["_count"] - before["_count"]
    single_request_batches = after["_bucket1.0"] - before["_bucket1.0"]
    assert batches > 0
    assert batches - single_request_batches > 0, "no forward pass shared by two requests"
