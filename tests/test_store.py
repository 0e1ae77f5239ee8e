"""ChromaStore on real Chroma (a directory and a `chroma run` server) with real MiniLM."""

from __future__ import annotations

import socket
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.api.collection_configuration import CreateCollectionConfiguration

from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import (
    DEFAULT_COLLECTION,
    ChromaStore,
    CollectionNotFoundError,
    ModelMismatchError,
    ServerUnreachableError,
    StoreError,
    connect,
    describe,
    fingerprint,
    maximal_marginal_relevance,
)

DOCS = {
    "cats": ("Cats purr when they are content and knead soft blankets.", "pets.md"),
    "dogs": ("Dogs wag their tails and love to fetch a thrown ball.", "pets.md"),
    "stocks": ("The stock market fell sharply after the central bank raised rates.", "news.md"),
    "plants": ("Photosynthesis lets plants turn sunlight and water into sugar.", "bio.md"),
}


def fill(store: ChromaStore) -> None:
    store.upsert(
        list(DOCS),
        [text for text, _ in DOCS.values()],
        [{"source": source, "chunk": 0} for _, source in DOCS.values()],
    )


@pytest.fixture
def store(minilm: YoutuEmbedder, tmp_path: Path) -> ChromaStore:
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")
    fill(store)
    return store


def test_collection_is_cosine_and_records_the_fingerprint(
    store: ChromaStore, minilm: YoutuEmbedder
) -> None:
    assert store.collection.configuration_json["hnsw"]["space"] == "cosine"
    metadata = store.collection.metadata or {}
    assert {key: metadata[key] for key in fingerprint(minilm)} == {
        "youtu_rag:backend": "local",
        "youtu_rag:model": "sentence-transformers/all-MiniLM-L6-v2",
        "youtu_rag:dimension": 384,
        "youtu_rag:query_prefix": "",
        "youtu_rag:document_prefix": "",
        "youtu_rag:pooling": "all",
    }
    info = describe(store.client, store.name)
    assert (info.count, info.model, info.dimension) == (4, minilm.model_name, 384)


def test_search_scores_are_cosine_similarities(store: ChromaStore, minilm: YoutuEmbedder) -> None:
    query = "Why did share prices drop?"
    hits = store.search(query, k=3, mode="dense")
    assert len(hits) == 3
    assert hits[0].id == "stocks"
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    query_vector = minilm.encode_queries([query])[0]
    for hit in hits:
        expected = float(minilm.encode_documents([DOCS[hit.id][0]])[0] @ query_vector)
        assert hit.score == pytest.approx(expected, abs=1e-4)
        assert hit.text == DOCS[hit.id][0]
        assert hit.source == DOCS[hit.id][1]
        assert hit.dense_score == hit.score and hit.lexical_rank is None
        assert hit.to_dict().keys() == {
            "id",
            "score",
            "text",
            "source",
            "metadata",
            "dense_rank",
            "dense_score",
            "lexical_rank",
            "lexical_score",
            "fallback",
            "rerank_score",
        }


def test_k_larger_than_the_collection_returns_everything(store: ChromaStore) -> None:
    assert len(store.search("animals", k=50)) == len(DOCS)


def test_where_filter(store: ChromaStore) -> None:
    hits = store.search("Why did share prices drop?", k=4, where={"source": "pets.md"})
    assert {hit.id for hit in hits} == {"cats", "dogs"}


def test_mmr_prefers_a_different_passage_over_a_near_duplicate(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")
    store.upsert(
        ["a", "a2", "b"],
        [
            "Chroma stores embedding vectors on disk.",
            "Chroma stores embedding vectors on disk!",
            "Bananas are a yellow fruit.",
        ],
    )
    question = "Where are vectors kept?"
    plain = [hit.id for hit in store.search(question, k=2, mode="dense")]
    diverse = [hit.id for hit in store.search(question, k=2, mode="dense", mmr=True)]
    assert sorted(plain) == ["a", "a2"]
    assert diverse[0] in ("a", "a2") and diverse[1] == "b"


def test_maximal_marginal_relevance_with_lambda_one_is_plain_ranking() -> None:
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(6, 8)).astype(np.float32)
    query = rng.normal(size=8).astype(np.float32)
    ranking = list(np.argsort(-(candidates @ query))[:4])
    assert maximal_marginal_relevance(query, candidates, 4, lambda_mult=1.0) == ranking


def test_upsert_overwrites_by_id(store: ChromaStore) -> None:
    store.upsert(["cats"], ["Cats sleep sixteen hours a day."], [{"source": "pets.md"}])
    assert store.count() == len(DOCS)
    assert store.collection.get(ids=["cats"])["documents"] == ["Cats sleep sixteen hours a day."]


def test_upsert_splits_writes_at_the_max_batch_size(store: ChromaStore) -> None:
    n = store.client.get_max_batch_size() + 7
    vectors = np.random.default_rng(0).normal(size=(n, store.embedder.dimension))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"bulk-{i}" for i in range(n)]
    assert store.upsert(ids, [f"text {i}" for i in range(n)], embeddings=vectors) == n
    assert store.count() == len(DOCS) + n
    assert store.delete(ids) == n
    assert store.count() == len(DOCS)


def test_bad_texts_are_named_by_index(store: ChromaStore) -> None:
    with pytest.raises(ValueError, match="index 1"):
        store.upsert(["x", "y"], ["fine", "  "])
    with pytest.raises(TypeError, match="index 0"):
        store.upsert(["x"], [None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="index 0"):
        store.search("   ")


def test_reopening_with_another_model_is_refused(
    store: ChromaStore, tiny_youtu: YoutuEmbedder, tmp_path: Path
) -> None:
    for create in (True, False):
        with pytest.raises(ModelMismatchError) as caught:
            ChromaStore.open(tiny_youtu, persist_dir=tmp_path / "db", create=create)
        message = str(caught.value)
        assert "sentence-transformers/all-MiniLM-L6-v2" in message
        assert tiny_youtu.model_name in message
    # Nothing was written by the refused embedder.
    assert describe(store.client).model == store.embedder.model_name


def test_a_collection_made_elsewhere_is_refused(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    client = connect(tmp_path / "db")
    cosine: CreateCollectionConfiguration = {"hnsw": {"space": "cosine"}}
    client.create_collection("foreign", configuration=cosine, embedding_function=None)
    with pytest.raises(ModelMismatchError, match="not made by youtu-rag"):
        ChromaStore(minilm, client, "foreign")
    client.create_collection("foreign-l2", embedding_function=None)
    with pytest.raises(StoreError, match="l2 distance, not cosine"):
        ChromaStore(minilm, client, "foreign-l2")


def test_missing_database_and_collection(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    with pytest.raises(CollectionNotFoundError, match="no index at"):
        connect(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()
    client = connect(tmp_path / "db")
    with pytest.raises(CollectionNotFoundError, match="'nope-collection' does not exist"):
        ChromaStore(minilm, client, "nope-collection", create=False)
    with pytest.raises(CollectionNotFoundError):
        describe(client, "nope-collection")


def test_plain_chroma_reopens_the_collection_and_embeds_queries(
    store: ChromaStore, tmp_path: Path
) -> None:
    """The registered embedding function lets any Chroma client query by text."""
    collection = chromadb.PersistentClient(str(tmp_path / "db")).get_collection(DEFAULT_COLLECTION)
    result = collection.query(query_texts=["Why did share prices drop?"], n_results=1)
    assert result["ids"] == [["stocks"]]


def test_server_round_trip(minilm: YoutuEmbedder, chroma_server: str) -> None:
    store = ChromaStore.open(minilm, url=chroma_server, collection="server-store")
    fill(store)
    again = ChromaStore.open(minilm, url=chroma_server, collection="server-store", create=False)
    assert again.count() == len(DOCS)
    assert again.search("Why did share prices drop?", k=1)[0].id == "stocks"
    assert describe(connect(url=chroma_server), "server-store").count == len(DOCS)


def test_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = probe.getsockname()[1]
        with pytest.raises(ServerUnreachableError, match="cannot reach"):
            connect(url=f"http://127.0.0.1:{port}")
    # The failed attempt leaves nothing behind that breaks the next client.
    assert connect(tmp_path / "db").heartbeat() > 0
    with pytest.raises(ValueError, match="http://host:port"):
        connect(url="127.0.0.1:8000")
    with pytest.raises(ValueError, match="not both"):
        connect("dir", "http://127.0.0.1:8000")


def test_llama_index_reads_the_same_collection(store: ChromaStore) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.embeddings.youtu import YoutuEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    index = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=store.collection),
        embed_model=YoutuEmbedding(model=store.embedder.model_name, device="cpu"),
    )
    question = "Why did share prices drop?"
    nodes = index.as_retriever(similarity_top_k=2).retrieve(question)
    ours = store.search(question, k=2)
    assert [node.node.node_id for node in nodes] == [hit.id for hit in ours]
    assert nodes[0].node.get_content() == ours[0].text
    assert nodes[0].node.metadata["source"] == ours[0].source
