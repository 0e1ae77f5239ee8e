"""YoutuRetriever on a real Chroma collection with real MiniLM, and LangChain's standard suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests
from langchain_youtu import YoutuRetriever

from tests.samples import passage_store
from youtu_rag import MINILM, YoutuEmbedder
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
        "dense_score": pytest.approx(hits[0].dense_score),
        "lexical_score": pytest.approx(hits[0].lexical_score),
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


# LangChain's retriever vocabulary, checked against langchain_chroma on the same collection.

TOPICS = [
    ("Masked mean pooling averages only the text tokens of a sentence.", "en", "pooling"),
    ("Mean pooling over text tokens, leaving the instruction out of the average.", "en", "pooling"),
    ("Pooling by averaging: the instruction tokens are masked before the mean.", "en", "pooling"),
    ("掩码平均池化只对文本的词元取平均、不包括指令。", "zh", "pooling"),
    ("Chroma keeps vectors, documents and metadata in collections on disk.", "en", "chroma"),
    ("向量数据库把向量、文档和元数据存放在集合里。", "zh", "chroma"),
    ("A chat model answers from the retrieved passages and cites them.", "en", "rag"),
    ("检索增强生成把检索到的段落交给对话模型回答问题。", "zh", "rag"),
    ("Chunks are measured in model tokens so none is cut by the model.", "en", "chunks"),
    ("Stable chunk ids let a re-run skip text that did not change.", "en", "chunks"),
    ("The stock market fell on Monday after the rate decision.", "en", "other"),
    ("猫在沙发上睡觉、阳光照进客厅。", "zh", "other"),
]
LANGCHAIN_CASES: list[tuple[str, dict[str, Any]]] = [
    ("similarity", {"k": 3}),
    ("similarity", {"k": 4, "filter": {"lang": "zh"}}),
    ("similarity", {"k": 5, "where_document": {"$contains": "pooling"}}),
    ("mmr", {"k": 3}),
    ("mmr", {"k": 2, "filter": {"lang": "en"}}),
    ("mmr", {"k": 4, "fetch_k": 6, "lambda_mult": 0.25}),
    ("similarity_score_threshold", {"k": 6, "score_threshold": 0.3}),
]
QUESTIONS = ["Which tokens does the average leave out?", "向量存放在哪里"]


@pytest.fixture(scope="module")
def topic_store(minilm: YoutuEmbedder, tmp_path_factory: pytest.TempPathFactory) -> ChromaStore:
    """Near-duplicate passages (where MMR differs from plain similarity), in two languages,
    added as LangChain Documents through the store."""
    store = ChromaStore.open(minilm, persist_dir=tmp_path_factory.mktemp("topics") / "db")
    documents = [
        Document(page_content=text, metadata={"lang": lang, "topic": topic}, id=f"t{i}")
        for i, (text, lang, topic) in enumerate(TOPICS)
    ]
    assert store.add_documents(documents) == [f"t{i}" for i in range(len(TOPICS))]
    return store


@pytest.fixture(scope="module")
def langchain_chroma(topic_store: ChromaStore) -> Any:
    from langchain_chroma import Chroma
    from langchain_youtu import YoutuEmbeddings

    embeddings = YoutuEmbeddings(MINILM, device="cpu")
    return Chroma(
        client=topic_store.client, collection_name=topic_store.name, embedding_function=embeddings
    )


@pytest.mark.parametrize(("search_type", "search_kwargs"), LANGCHAIN_CASES)
def test_same_documents_as_langchain_chroma(
    topic_store: ChromaStore, langchain_chroma: Any, search_type: str, search_kwargs: dict[str, Any]
) -> None:
    ours = YoutuRetriever(
        store=topic_store, search_type=search_type, search_kwargs=search_kwargs, mode="dense"
    )
    theirs = langchain_chroma.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
    for question in QUESTIONS:
        expected = [document.id for document in theirs.invoke(question)]
        assert [document.id for document in ours.invoke(question)] == expected
        assert [document.id for document in ours.invoke(question, k=1)] == [
            document.id for document in theirs.invoke(question, k=1)
        ]


def test_mmr_and_filters_change_the_results(topic_store: ChromaStore) -> None:
    question = QUESTIONS[0]
    plain = YoutuRetriever(store=topic_store, search_kwargs={"k": 3}).invoke(question)
    diverse = YoutuRetriever(store=topic_store, search_type="mmr", search_kwargs={"k": 3})
    assert [d.id for d in plain] != [d.id for d in diverse.invoke(question)]
    chinese = YoutuRetriever(store=topic_store, search_kwargs={"k": 3, "filter": {"lang": "zh"}})
    assert {d.metadata["lang"] for d in chinese.invoke(question)} == {"zh"}
    high = YoutuRetriever(
        store=topic_store,
        search_type="similarity_score_threshold",
        search_kwargs={"score_threshold": 0.5, "k": 10},
    )
    kept = high.invoke(question)
    assert kept and all(d.metadata["dense_score"] >= 0.5 for d in kept)


def test_unknown_or_contradicting_options_are_refused(topic_store: ChromaStore) -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        YoutuRetriever(store=topic_store, search_kwargs={"k": 2}, search_type="mmr", foo=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="search_kwargs fetchk not understood"):
        YoutuRetriever(store=topic_store, search_kwargs={"fetchk": 2})
    with pytest.raises(ValueError, match="search_type"):
        YoutuRetriever(store=topic_store, search_type="similar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs search_kwargs\\['score_threshold'\\]"):
        YoutuRetriever(store=topic_store, search_type="similarity_score_threshold")
    with pytest.raises(ValueError, match="k=2 and search_kwargs\\['k'\\]=3 differ"):
        YoutuRetriever(store=topic_store, k=2, search_kwargs={"k": 3})
    with pytest.raises(TypeError, match="does not take top_k"):
        YoutuRetriever(store=topic_store).invoke("x", top_k=2)


def test_nodes_are_added_with_their_ids(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    from llama_index.core import Document as LlamaDocument
    from llama_index.core.node_parser import SentenceSplitter

    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")
    source = LlamaDocument(text="猫在沙发上睡觉。\n\nChroma stores vectors.", metadata={"f": "a"})
    nodes = SentenceSplitter(chunk_size=16, chunk_overlap=0).get_nodes_from_documents([source])
    assert store.add_nodes(nodes) == [node.node_id for node in nodes]
    stored = store.collection.get(ids=[nodes[0].node_id], include=["documents", "metadatas"])
    assert stored["documents"] == [nodes[0].get_content()]
    assert stored["metadatas"] == [{"f": "a", "ref_doc_id": source.doc_id}]
    [hit] = store.search("Where do vectors live?", k=1)
    assert hit.id == nodes[-1].node_id
