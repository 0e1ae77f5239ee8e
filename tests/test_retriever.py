"""YoutuRetriever on a real Chroma collection with real MiniLM, and LangChain's standard suite."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests
from langchain_youtu import YoutuRetriever

from tests.samples import passage_store
from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore

PASSAGES = {
    "pooling": ("Masked mean pooling averages only the text tokens, not the instruction.", "a.md"),
    "chroma": ("Chroma stores vectors, documents and metadata in collections.", "b.md"),
    "rag": ("Retrieval-augmented generation feeds retrieved passages to a chat model.", "b.md"),
    "chunks": ("Documents are split into chunks measured in model tokens.", "c.md"),
    "ids": ("Stable chunk ids make re-indexing skip unchanged text.", "c.md"),
}
QUERY = "How does the embedding ignore the instruction?"


@pytest.fixture(scope="module")
def store(minilm: YoutuEmbedder, tmp_path_factory: pytest.TempPathFactory) -> ChromaStore:
    return passage_store(minilm, tmp_path_factory.mktemp("retriever"), PASSAGES, chunk=0)


class TestYoutuRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _store(self, store: ChromaStore) -> None:
        self.store = store

    @property
    def retriever_constructor(self) -> type[YoutuRetriever]:
        return YoutuRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self.store, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_documents_carry_text_source_id_and_score(store: ChromaStore) -> None:
    documents = YoutuRetriever(store=store, k=2).invoke(QUERY)
    hits = store.search(QUERY, k=2)
    assert [document.id for document in documents] == [hit.id for hit in hits]
    assert documents[0].id == "pooling"
    assert documents[0].page_content == PASSAGES["pooling"][0]
    assert documents[0].metadata == {
        "source": "a.md",
        "chunk": 0,
        "id": "pooling",
        "score": pytest.approx(hits[0].score),
    }


def test_k_in_constructor_and_per_call(store: ChromaStore) -> None:
    retriever = YoutuRetriever(store=store, k=3)
    assert len(retriever.invoke(QUERY)) == 3
    assert len(retriever.invoke(QUERY, k=1)) == 1
    assert len(retriever.invoke(QUERY, k=5)) == 5
    with pytest.raises(ValueError):
        YoutuRetriever(store=store, k=0)


async def test_async_honours_k_and_matches_sync(store: ChromaStore) -> None:
    retriever = YoutuRetriever(store=store, k=3)
    documents = await retriever.ainvoke(QUERY)
    assert [document.id for document in documents] == [
        document.id for document in retriever.invoke(QUERY)
    ]
    assert len(await retriever.ainvoke(QUERY, k=1)) == 1
    batched = await retriever.abatch([QUERY, "Where are vectors stored?"])
    assert [len(result) for result in batched] == [3, 3]


def test_where_filter_in_constructor_and_per_call(store: ChromaStore) -> None:
    only_c = YoutuRetriever(store=store, k=5, where={"source": "c.md"})
    assert {document.id for document in only_c.invoke(QUERY)} == {"chunks", "ids"}
    per_call = YoutuRetriever(store=store, k=5).invoke(QUERY, where={"source": "b.md"})
    assert {document.id for document in per_call} == {"chroma", "rag"}


def test_mmr_returns_k_distinct_documents(store: ChromaStore) -> None:
    documents: list[Document] = YoutuRetriever(store=store, k=3, mmr=True).invoke(QUERY)
    assert len({document.id for document in documents}) == 3
    assert documents[0].id == "pooling"


def test_empty_query_is_refused(store: ChromaStore) -> None:
    with pytest.raises(ValueError, match="index 0"):
        YoutuRetriever(store=store).invoke(" ")
