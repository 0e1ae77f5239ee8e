"""YoutuEmbeddings: LangChain's standard suites and a langchain-chroma round trip (the contract
shared with the other adapters is in test_adapter_contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_chroma import Chroma
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from langchain_youtu import YoutuEmbeddings

from tests.samples import CORPUS, QUESTIONS
from youtu_rag import MINILM


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
