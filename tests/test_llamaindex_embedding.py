"""YoutuEmbedding: equality with the core, batching, events, async, and a Chroma-backed index."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.core.schema import TextNode
from llama_index.embeddings.youtu import YoutuEmbedding
from llama_index.vector_stores.chroma import ChromaVectorStore
from pydantic import Field

from youtu_rag import MINILM, YOUTU_EMBEDDING, YoutuEmbedder

REPO = Path(__file__).resolve().parents[1]
INSTRUCTION = "Given a question about the weather, find the sentence that answers it"
QUERIES = ["What's the weather like?", "结算业务系统用户使用", "sky"]
DOCUMENTS = [
    "The weather is lovely today.",
    "查询出该时间范围内到期的账户冻结列表。" * 5,
    "He drove to the stadium.",
    "x",
    "Would you want to play a game?",
    "It's so sunny outside!",
    "Retrieval augmented generation feeds the best passages to a chat model.",
]
CORPUS = {
    "cats": "Cats purr when they are content and knead soft blankets with their paws.",
    "stocks": "The stock market fell sharply on Monday after the central bank raised rates.",
    "plants": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "football": "The striker scored twice in the second half to win the cup final.",
}
QUESTIONS = {
    "How do plants make food from light?": "plants",
    "Why did share prices drop?": "stocks",
    "Who won the soccer match?": "football",
}


@pytest.fixture(scope="module")
def tiny(tiny_youtu_dir: str) -> YoutuEmbedding:
    return YoutuEmbedding(
        model=tiny_youtu_dir, device="cpu", batch_size=2, query_instruction=INSTRUCTION
    )


@pytest.fixture(scope="module")
def tiny_core(tiny_youtu_dir: str) -> YoutuEmbedder:
    return YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=2, query_instruction=INSTRUCTION)


def count_core_calls(model: YoutuEmbedding) -> list[int]:
    """Wrap the real ``encode_documents``; the returned list gets each call's text count."""
    sizes: list[int] = []
    real = model.embedder.encode_documents

    def counting(texts: Any) -> np.ndarray:
        sizes.append(1 if isinstance(texts, str) else len(texts))
        return real(texts)

    model.embedder.encode_documents = counting  # type: ignore[method-assign]
    return sizes


def test_vectors_equal_the_core(tiny: YoutuEmbedding, tiny_core: YoutuEmbedder) -> None:
    documents = tiny.get_text_embedding_batch(DOCUMENTS)
    single = tiny.get_text_embedding(DOCUMENTS[0])
    queries = [tiny.get_query_embedding(query) for query in QUERIES]
    assert all(type(value) is float for value in documents[0] + queries[0])
    expected_documents = tiny_core.encode_documents(DOCUMENTS)
    assert np.abs(np.asarray(documents) - expected_documents).max() <= 1e-6
    assert np.abs(np.asarray(single) - expected_documents[0]).max() <= 1e-6
    assert np.abs(np.asarray(queries) - tiny_core.encode_queries(QUERIES)).max() <= 1e-6
    # The instruction reaches queries only.
    assert np.abs(np.asarray(queries) - tiny_core.encode_documents(QUERIES)).max() > 1e-3


async def test_async_vectors_equal_the_core(tiny: YoutuEmbedding, tiny_core: YoutuEmbedder) -> None:
    documents = await tiny.aget_text_embedding_batch(DOCUMENTS)
    single = await tiny.aget_text_embedding(DOCUMENTS[1])
    query = await tiny.aget_query_embedding(QUERIES[0])
    expected_documents = tiny_core.encode_documents(DOCUMENTS)
    assert np.abs(np.asarray(documents) - expected_documents).max() <= 1e-6
    assert np.abs(np.asarray(single) - expected_documents[1]).max() <= 1e-6
    assert np.abs(np.asarray(query) - tiny_core.encode_queries(QUERIES[:1])[0]).max() <= 1e-6


def test_one_core_call_per_batch(tiny_youtu_dir: str) -> None:
    model = YoutuEmbedding(model=tiny_youtu_dir, device="cpu", batch_size=2, embed_batch_size=3)
    sizes = count_core_calls(model)
    model.get_text_embedding_batch(DOCUMENTS)
    assert sizes == [3, 3, 1]


async def test_one_core_call_per_batch_async(tiny_youtu_dir: str) -> None:
    model = YoutuEmbedding(model=tiny_youtu_dir, device="cpu", embed_batch_size=4)
    sizes = count_core_calls(model)
    await model.aget_text_embedding_batch(DOCUMENTS)
    assert sorted(sizes) == [3, 4]


def test_llama_index_batch_defaults_to_the_core_batch(tiny_youtu_dir: str) -> None:
    model = YoutuEmbedding(model=tiny_youtu_dir, device="cpu", batch_size=5)
    assert model.embed_batch_size == 5
    sizes = count_core_calls(model)
    model.get_text_embedding_batch(DOCUMENTS)
    assert sizes == [5, 2]


async def test_async_runs_the_model_off_the_event_loop(tiny_youtu_dir: str) -> None:
    model = YoutuEmbedding(model=tiny_youtu_dir, device="cpu")
    threads: list[int] = []
    real_documents, real_queries = model.embedder.encode_documents, model.embedder.encode_queries

    def recording_documents(texts: Any) -> np.ndarray:
        threads.append(threading.get_ident())
        return real_documents(texts)

    def recording_queries(texts: Any) -> np.ndarray:
        threads.append(threading.get_ident())
        return real_queries(texts)

    model.embedder.encode_documents = recording_documents  # type: ignore[method-assign]
    model.embedder.encode_queries = recording_queries  # type: ignore[method-assign]
    await asyncio.gather(
        model.aget_text_embedding_batch(DOCUMENTS),
        model.aget_text_embedding("sky"),
        model.aget_query_embedding("sky"),
    )
    assert len(threads) == 3
    assert threading.get_ident() not in threads


class _Recorder(BaseEventHandler):
    chunks: list[list[str]] = Field(default_factory=list)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, EmbeddingEndEvent):
            self.chunks.append(list(event.chunks))


def test_events_and_progress_keep_working(
    tiny_youtu_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    debug = LlamaDebugHandler()
    model = YoutuEmbedding(
        model=tiny_youtu_dir,
        device="cpu",
        embed_batch_size=4,
        callback_manager=CallbackManager([debug]),
    )
    recorder = _Recorder()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(recorder)
    try:
        model.get_text_embedding_batch(DOCUMENTS, show_progress=True)
    finally:
        dispatcher.event_handlers.remove(recorder)
    assert recorder.chunks == [DOCUMENTS[:4], DOCUMENTS[4:]]
    pairs = debug.get_event_pairs(CBEventType.EMBEDDING)
    assert [len(end.payload["chunks"]) for _, end in pairs] == [4, 3]  # type: ignore[index]
    assert "Generating embeddings" in capsys.readouterr().err


def test_instances_share_one_loaded_model(tiny_youtu_dir: str, tiny: YoutuEmbedding) -> None:
    other = YoutuEmbedding(model_name=tiny_youtu_dir, device="cpu", query_instruction="")
    assert other.embedder is not tiny.embedder
    assert other.embedder.backbone is tiny.embedder.backbone
    assert other.embedder.query_prefix == "" != tiny.embedder.query_prefix


def test_class_name_fields_and_round_trip(tiny: YoutuEmbedding, tiny_youtu_dir: str) -> None:
    assert YoutuEmbedding.class_name() == "YoutuEmbedding"
    assert YoutuEmbedding.model_fields["model_name"].default == YOUTU_EMBEDDING
    data = tiny.to_dict()
    assert data["class_name"] == "YoutuEmbedding" and data["model_name"] == tiny_youtu_dir
    rebuilt = YoutuEmbedding.from_dict(data)
    assert (rebuilt.query_instruction, rebuilt.batch_size) == (INSTRUCTION, 2)
    assert rebuilt.embedder.backbone is tiny.embedder.backbone
    assert rebuilt.embedder.query_prefix == tiny.embedder.query_prefix


def test_bad_input_is_named_by_index(tiny: YoutuEmbedding) -> None:
    with pytest.raises(ValueError, match="index 1"):
        tiny.get_text_embedding_batch(["fine", ""])
    with pytest.raises(TypeError, match="index 0"):
        tiny.get_query_embedding(None)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> VectorStoreIndex:
    client = chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("llama_chroma")))
    collection = client.create_collection(
        "llama_youtu", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(collection))
    nodes = [TextNode(id_=key, text=text) for key, text in CORPUS.items()]
    embed_model = YoutuEmbedding(model=MINILM, device="cpu")
    return VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)


def test_vector_store_index_over_chroma_retrieves_the_right_node(index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=1)
    for question, key in QUESTIONS.items():
        [hit] = retriever.retrieve(question)
        assert hit.node.node_id == key
        assert hit.node.get_content() == CORPUS[key]


async def test_vector_store_index_async_retrieval(index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=2)
    results = await asyncio.gather(*(retriever.aretrieve(q) for q in QUESTIONS))
    assert [hits[0].node.node_id for hits in results] == list(QUESTIONS.values())


def test_works_without_langchain() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        # As if the langchain extra were not installed (langchain-core itself comes with the
        # core's text splitter dependency, so only what the extra adds is blocked).
        for blocked in ("langchain", "langchain_youtu"):
            sys.modules[blocked] = None
        from llama_index.embeddings.youtu import YoutuEmbedding
        vector = YoutuEmbedding(model={MINILM!r}, device="cpu").get_query_embedding("hello")
        assert len(vector) == 384 and isinstance(vector[0], float)
        print("ok")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")
