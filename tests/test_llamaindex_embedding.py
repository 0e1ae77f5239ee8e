"""YoutuEmbedding: batching, events, class name, and a Chroma-backed index (the contract shared
with the other adapters is in test_adapter_contract.py)."""

from __future__ import annotations

import asyncio
import logging
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

from tests.samples import CORPUS, DOCUMENTS, QUESTIONS
from youtu_rag import MINILM


def count_core_calls(model: YoutuEmbedding) -> list[int]:
    """Wrap the real ``encode_documents``; the returned list gets each call's text count."""
    sizes: list[int] = []
    real = model.embedder.encode_documents

    def counting(texts: Any) -> np.ndarray:
        sizes.append(1 if isinstance(texts, str) else len(texts))
        return real(texts)

    model.embedder.encode_documents = counting  # type: ignore[method-assign]
    return sizes


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


def test_class_name_and_model_name(tiny_youtu_dir: str) -> None:
    assert YoutuEmbedding.class_name() == "YoutuEmbedding"
    # HuggingFaceEmbedding's model_name= names the model; LlamaIndex's model_name follows ours.
    model = YoutuEmbedding(model_name=tiny_youtu_dir, device="cpu")
    assert model.model_name == model.model_name_or_path == tiny_youtu_dir
    assert model.to_dict()["class_name"] == "YoutuEmbedding"
    other = model.model_copy(update={"model": MINILM})
    assert other.model_name == MINILM and other.embedder.model_name == MINILM


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


def test_one_truncation_warning_for_a_whole_index(caplog: pytest.LogCaptureFixture) -> None:
    """100 documents longer than MiniLM's 256 tokens, embedded in several batches: one warning,
    and the count of every truncated text still available."""
    from llama_index.core import Document

    long_texts = [
        f"Document {i}: masked mean pooling averages the text tokens only. " * 40
        if i % 2
        else f"第{i}篇。掩码平均池化只对文本的词元取平均。" * 60
        for i in range(100)
    ]
    embedding = YoutuEmbedding(model_name=MINILM, device="cpu")
    with caplog.at_level(logging.WARNING, logger="youtu_rag"):
        VectorStoreIndex.from_documents(
            [Document(text=text) for text in long_texts], embed_model=embedding
        )
    warnings = [r.getMessage() for r in caplog.records if "were truncated" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].endswith("texts exceed 256 tokens and were truncated")
    counts = embedding.embedder.warning_counts()
    assert counts["truncated"] >= 100
