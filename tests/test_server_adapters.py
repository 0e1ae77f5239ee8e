"""HttpEmbedder in front of a real `youtu-rag serve`, alone and behind the LangChain adapter,
the LlamaIndex adapter and the Chroma function: the same vectors and search results as the
in-process embedder, without loading a model."""

from __future__ import annotations

import pickle
from pathlib import Path

import chromadb
import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_youtu import YoutuEmbeddings
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.embeddings.youtu import YoutuEmbedding

from tests.server_process import QUERY_INSTRUCTION
from youtu_rag import MINILM, YoutuEmbedder, YoutuEmbeddingFunction
from youtu_rag.backends.destinations import ALLOWED_DESTINATIONS_ENV
from youtu_rag.backends.http import EmbeddingServerError, HttpEmbedder

CORPUS = {
    "cats": "Cats purr when they are content and knead soft blankets with their paws.",
    "stocks": "The stock market fell sharply on Monday after the central bank raised rates.",
    "plants": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "football": "The striker scored twice in the second half to win the cup final.",
    "rain": "Heavy rain is expected over the weekend, with flooding near the river.",
}
QUESTIONS = [
    "How do plants make food from light?",
    "Why did share prices drop?",
    "Will it be wet on Saturday?",
]


@pytest.fixture(scope="module")
def remote(youtu_server: str) -> HttpEmbedder:
    return HttpEmbedder(youtu_server)


def test_http_embedder_equals_the_core(
    remote: HttpEmbedder, minilm_instructed: YoutuEmbedder
) -> None:
    documents = list(CORPUS.values())
    assert (remote.model_name, remote.dimension) == (MINILM, 384)
    assert remote.query_prefix == minilm_instructed.query_prefix
    got = remote.encode_documents(documents)
    assert got.dtype == np.float32 and got.shape == (5, 384)
    assert np.abs(got - minilm_instructed.encode_documents(documents)).max() <= 1e-6
    queries = remote.encode_queries(QUESTIONS)
    assert np.abs(queries - minilm_instructed.encode_queries(QUESTIONS)).max() <= 1e-6
    # encode(prefix) knows the server's two prefixes; a string is one text.
    assert np.abs(remote.encode(QUESTIONS, remote.query_prefix) - queries).max() == 0
    assert remote.encode_documents("one text").shape == (1, 384)
    assert remote.encode_documents([]).shape == (0, 384)
    with pytest.raises(ValueError, match="query prefix"):
        remote.encode(QUESTIONS, prefix="Instruction: something else \nQuery:")


def test_http_embedder_batches_requests(youtu_server: str, minilm: YoutuEmbedder) -> None:
    small = HttpEmbedder(youtu_server, batch_size=2)
    texts = list(CORPUS.values())
    assert np.abs(small.encode_documents(texts) - minilm.encode_documents(texts)).max() <= 1e-6


def test_http_embedder_fails_like_the_core(remote: HttpEmbedder, youtu_server: str) -> None:
    with pytest.raises(ValueError, match="index 1"):
        remote.encode_documents(["fine", "  "])
    with pytest.raises(TypeError, match="index 0"):
        remote.encode_queries([None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=f"serves '{MINILM}', not 'tencent/Youtu-Embedding'"):
        HttpEmbedder(youtu_server, model="tencent/Youtu-Embedding")
    # Where the core would cut the text, the server refuses it unless started --auto-truncate.
    with pytest.raises(EmbeddingServerError, match="256 tokens") as refused:
        remote.encode_documents(["word " * 300])
    assert (refused.value.status, refused.value.code) == (400, "context_length_exceeded")


def ranked(hits: list[tuple[str, float]]) -> tuple[list[str], np.ndarray]:
    return [name for name, _ in hits], np.array([score for _, score in hits])


def test_langchain_adapter_through_the_server(youtu_server: str) -> None:
    local = YoutuEmbeddings(model=MINILM, device="cpu", query_instruction=QUERY_INSTRUCTION)
    served = YoutuEmbeddings(base_url=youtu_server)
    assert isinstance(served.embedder, HttpEmbedder)
    results = []
    for embeddings in (local, served):
        store = InMemoryVectorStore(embeddings)
        store.add_texts(list(CORPUS.values()), ids=list(CORPUS))
        results.append(
            [
                ranked(
                    [
                        (str(document.id), score)
                        for document, score in store.similarity_search_with_score(question, k=3)
                    ]
                )
                for question in QUESTIONS
            ]
        )
    for (local_ids, local_scores), (served_ids, served_scores) in zip(*results, strict=True):
        assert local_ids == served_ids
        assert np.abs(local_scores - served_scores).max() <= 1e-6
    assert [ids[0] for ids, _ in results[1]] == ["plants", "stocks", "rain"]


def test_llamaindex_adapter_through_the_server(youtu_server: str) -> None:
    local = YoutuEmbedding(model=MINILM, device="cpu", query_instruction=QUERY_INSTRUCTION)
    served = YoutuEmbedding(base_url=youtu_server)
    assert isinstance(served.embedder, HttpEmbedder)
    results = []
    for embed_model in (local, served):
        nodes = [TextNode(id_=name, text=text) for name, text in CORPUS.items()]
        retriever = VectorStoreIndex(nodes, embed_model=embed_model).as_retriever(
            similarity_top_k=3
        )
        results.append(
            [
                ranked([(hit.node.node_id, float(hit.score or 0)) for hit in retriever.retrieve(q)])
                for q in QUESTIONS
            ]
        )
    for (local_ids, local_scores), (served_ids, served_scores) in zip(*results, strict=True):
        assert local_ids == served_ids
        assert np.abs(local_scores - served_scores).max() <= 1e-6
    assert [ids[0] for ids, _ in results[1]] == ["plants", "stocks", "rain"]


def test_chroma_function_through_the_server(
    youtu_server: str,
    minilm_instructed: YoutuEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path))
    functions = {
        "local": YoutuEmbeddingFunction.from_embedder(minilm_instructed),
        "served": YoutuEmbeddingFunction(base_url=youtu_server),
    }
    results = {}
    for name, function in functions.items():
        collection = client.create_collection(name, embedding_function=function)  # type: ignore[arg-type]
        collection.add(ids=list(CORPUS), documents=list(CORPUS.values()))
        results[name] = collection.query(query_texts=QUESTIONS, n_results=3)
    assert results["served"]["ids"] == results["local"]["ids"]
    assert [ids[0] for ids in results["served"]["ids"]] == ["plants", "stocks", "rain"]
    assert (
        np.abs(
            np.asarray(results["served"]["distances"]) - np.asarray(results["local"]["distances"])
        ).max()
        <= 1e-6
    )

    # The collection remembers the server, not a model to load (and no key).
    config = functions["served"].get_config()
    assert config == {"base_url": youtu_server, "model_name_or_path": MINILM}
    reopened = chromadb.PersistentClient(path=str(tmp_path)).get_collection("served")
    with pytest.raises(ValueError, match=f"did not name; refused.*{ALLOWED_DESTINATIONS_ENV}"):
        reopened.configuration  # noqa: B018 - Chroma rebuilds the stored function here
    monkeypatch.setenv(ALLOWED_DESTINATIONS_ENV, youtu_server)
    rebuilt = reopened.configuration["embedding_function"]
    assert isinstance(rebuilt, YoutuEmbeddingFunction)
    assert isinstance(rebuilt.embedder, HttpEmbedder)
    again = reopened.query(query_texts=QUESTIONS, n_results=3)
    assert again["ids"] == results["local"]["ids"]


@pytest.mark.parametrize("adapter", [YoutuEmbeddings, YoutuEmbedding])
def test_a_served_adapter_copies_without_its_key(youtu_server: str, adapter: type) -> None:
    """Pickle and model_copy rebuild the server's client; the key is in none of their forms."""
    served = adapter(base_url=youtu_server, api_key="not-stored", batch_size=2)
    assert isinstance(served.embedder, HttpEmbedder) and served.embedder.batch_size == 2
    assert "not-stored" not in repr(served) + served.model_dump_json()
    assert "api_key" not in served.model_dump()
    pickled = pickle.dumps(served)
    assert b"not-stored" not in pickled
    unpickled = pickle.loads(pickled)
    assert unpickled.api_key is None and isinstance(unpickled.embedder, HttpEmbedder)
    changed = served.model_copy(update={"batch_size": 3})
    assert changed.embedder.batch_size == 3
    vector = served.embedder.encode_queries([QUESTIONS[0]])
    for other in (unpickled, changed):
        np.testing.assert_allclose(other.embedder.encode_queries([QUESTIONS[0]]), vector, atol=1e-6)
    with pytest.raises(ValueError, match="device cannot be set with base_url"):
        adapter(base_url=youtu_server, device="cpu")
