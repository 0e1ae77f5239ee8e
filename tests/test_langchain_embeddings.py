"""YoutuEmbeddings: LangChain's standard suites and a langchain-chroma round trip (the contract
shared with the other adapters is in test_adapter_contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from langchain_chroma import Chroma
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from langchain_youtu import YoutuEmbeddings
from sentence_transformers import SentenceTransformer

from tests.samples import CORPUS, QUESTIONS
from youtu_rag import MINILM
from youtu_rag.model.loading import DeviceUnavailableError


class _MiniLM:
    """What both standard suites build: YoutuEmbeddings over MiniLM on the CPU."""

    @property
    def embeddings_class(self) -> type[YoutuEmbeddings]:
        return YoutuEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MINILM, "device": "cpu"}


class TestYoutuEmbeddingsUnit(_MiniLM, EmbeddingsUnitTests):
    pass


class TestYoutuEmbeddingsIntegration(_MiniLM, EmbeddingsIntegrationTests):
    pass


def test_chroma_round_trip(tmp_path: Path) -> None:
    embeddings = YoutuEmbeddings(model=MINILM, device="cpu")
    settings: dict[str, Any] = {
        "collection_name": "langchain_youtu",
        "embedding_function": embeddings,
        "persist_directory": str(tmp_path),
        "collection_configuration": {"hnsw": {"space": "cosine"}},
    }
    store = Chroma(**settings)
    store.add_texts(list(CORPUS.values()), metadatas=[{"key": k} for k in CORPUS], ids=list(CORPUS))

    reopened = Chroma(**settings)
    stored = reopened.get(ids=list(CORPUS), include=["embeddings"])
    by_id = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    expected = embeddings.embedder.encode_documents(list(CORPUS.values()))
    assert np.abs(np.stack([by_id[key] for key in CORPUS]) - expected).max() <= 1e-6

    for question, key in QUESTIONS.items():
        [(document, score)] = reopened.similarity_search_with_relevance_scores(question, k=1)
        assert document.id == key and document.metadata == {"key": key}
        assert document.page_content == CORPUS[key]
        query = embeddings.embedder.encode_queries([question])[0]
        assert score == pytest.approx(float(query @ by_id[key]), abs=1e-5)


def test_the_hugging_face_snippet_runs_with_the_class_name_changed() -> None:
    """The most copied HuggingFaceEmbeddings lines, with only the import and class changed."""
    from langchain_youtu import YoutuEmbeddings as HuggingFaceEmbeddings

    emb = HuggingFaceEmbeddings(
        model_name=MINILM,
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    texts = ["Masked mean pooling averages the text tokens.", "掩码平均池化只对文本取平均。"]
    reference = SentenceTransformer(emb.embedder.profile.source, device="cpu")
    expected = reference.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(np.asarray(emb.embed_documents(texts)), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(emb.embed_query(texts[1])), expected[1], atol=1e-5)
    assert emb.model_name == MINILM and emb.device == "cpu"
    assert YoutuEmbeddings(MINILM).embed_query(texts[0]) == emb.embed_query(texts[0])


def test_cache_backed_embeddings_take_the_model_name_as_namespace() -> None:
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_core.stores import InMemoryByteStore

    emb = YoutuEmbeddings(MINILM, device="cpu")
    byte_store = InMemoryByteStore()
    cached = CacheBackedEmbeddings.from_bytes_store(emb, byte_store, namespace=emb.model_name)
    texts = ["Chroma stores vectors.", "向量数据库"]
    first = cached.embed_documents(texts)
    assert len(list(byte_store.yield_keys(prefix=MINILM))) == 2
    assert cached.embed_documents(texts) == first == emb.embed_documents(texts)


def test_what_differs_is_refused_in_one_sentence() -> None:
    with pytest.raises(ValueError, match=r"normalize_embeddings\]=False is not supported"):
        YoutuEmbeddings(MINILM, encode_kwargs={"normalize_embeddings": False})
    # Documents embedded with the query prompt: the replacement is named.
    with pytest.raises(ValueError, match="the document instruction is document_instruction="):
        YoutuEmbeddings(MINILM, encode_kwargs={"prompt_name": "query"})
    with pytest.raises(TypeError, match="give the model once"):
        YoutuEmbeddings(MINILM, model_name=MINILM)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_one_sentence() -> None:
    with pytest.raises(DeviceUnavailableError) as caught:
        YoutuEmbeddings(MINILM, model_kwargs={"device": "cuda"})
    message = str(caught.value)
    assert message.startswith("device 'cuda' is not available: this torch")
    assert "\n" not in message and "Assertion" not in message
