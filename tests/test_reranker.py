# ruff: noqa: RUF001  (Chinese text and punctuation, on purpose)
"""The second stage on a tiny random cross-encoder (no reranker weights can be downloaded here):
scores equal to sentence-transformers' ``CrossEncoder.predict`` to 1e-4 for Chinese and English
pairs and a pair longer than the model's limit, through the core, the CLI, LangChain and
LlamaIndex."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.tiny_reranker import build_tiny_reranker
from youtu_rag import Reranker, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.store import ChromaStore

QUERY = "报销发票多久内提交？ How soon must invoices be filed?"
DOCUMENTS = [
    "员工应在费用发生后三十天内提交报销申请。",
    "Employees must file expense claims within thirty days.",
    "He drove to the stadium.",
    "国内出差住宿标准为每晚五百元。 " + "hotel nights are capped " * 40,  # over the limit
    "The weather is lovely today.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_reranker(tmp_path_factory.mktemp("reranker")))


@pytest.fixture(scope="module")
def expected(tiny: str) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    return np.asarray(CrossEncoder(tiny, device="cpu").predict([(QUERY, d) for d in DOCUMENTS]))


def test_scores_equal_cross_encoder_and_rank_is_best_first(tiny: str, expected: np.ndarray) -> None:
    reranker = Reranker(tiny, device="cpu", batch_size=2)
    np.testing.assert_allclose(reranker.score(QUERY, DOCUMENTS), expected, atol=1e-4)
    ranked = reranker.rank(QUERY, DOCUMENTS, top_n=3)
    assert [index for index, _ in ranked] == list(np.argsort(-expected, kind="stable")[:3])
    assert reranker.warning_counts() == {"truncated": 2}  # the long pair, in each call
    assert reranker.score(QUERY, []) == []


def test_bad_input_names_the_index(tiny: str) -> None:
    reranker = Reranker(tiny, device="cpu")
    with pytest.raises(TypeError, match="index 1"):
        reranker.score(QUERY, ["fine", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="index 0 is empty"):
        reranker.score(QUERY, ["  "])
    with pytest.raises(ValueError, match="empty"):
        reranker.score("", ["fine"])
    with pytest.raises(ValueError, match="top_n"):
        reranker.rank(QUERY, ["fine"], top_n=0)


def test_threads_get_their_sequential_result(tiny: str, expected: np.ndarray) -> None:
    reranker = Reranker(tiny, device="cpu", batch_size=2)
    results: list[list[float]] = []

    def work(offset: int) -> None:
        docs = DOCUMENTS[offset:] + DOCUMENTS[:offset]
        results.append(np.roll(reranker.score(QUERY, docs), offset).tolist())

    threads = [threading.Thread(target=work, args=(i % len(DOCUMENTS),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


@pytest.fixture(scope="module")
def store(minilm: YoutuEmbedder, tmp_path_factory: pytest.TempPathFactory) -> ChromaStore:
    store = ChromaStore.open(minilm, persist_dir=tmp_path_factory.mktemp("db"), collection="rerank")
    store.upsert(
        [f"d{i}" for i in range(len(DOCUMENTS))],
        DOCUMENTS,
        [{"source": f"/docs/{i}.md", "chunk": 0} for i in range(len(DOCUMENTS))],
    )
    return store


def test_cli_search_and_ask_rerank(store: ChromaStore, tiny: str, expected: np.ndarray) -> None:
    db = store.client.get_settings().persist_directory
    common = ["--persist-dir", db, "--collection", "rerank", "--rerank", tiny, "--candidates", "5"]
    result = CliRunner().invoke(app, ["search", QUERY, "-k", "2", "--json", *common])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    best = list(np.argsort(-expected, kind="stable")[:2])
    assert [hit["id"] for hit in hits] == [f"d{i}" for i in best]
    for hit in hits:
        assert hit["rerank_score"] == pytest.approx(expected[int(hit["id"][1:])], abs=1e-4)
    text = CliRunner().invoke(app, ["search", QUERY, "-k", "2", *common])
    assert text.stdout.startswith(f"1. rerank {expected[best[0]]:.4f}  ")
    asked = CliRunner().invoke(app, ["ask", QUERY, "-k", "1", *common])
    assert asked.exit_code == 0 and DOCUMENTS[best[0]][:10] in asked.stdout


def test_langchain_compressor_and_retriever(
    store: ChromaStore, tiny: str, expected: np.ndarray
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.documents import Document
    from langchain_youtu import YoutuReranker, YoutuRetriever

    compressor = YoutuReranker(model=tiny, top_n=2, device="cpu")
    kept = compressor.compress_documents([Document(page_content=d) for d in DOCUMENTS], QUERY)
    best = list(np.argsort(-expected, kind="stable")[:2])
    assert [doc.page_content for doc in kept] == [DOCUMENTS[i] for i in best]
    assert kept[0].metadata["relevance_score"] == pytest.approx(expected[best[0]], abs=1e-4)
    compression = ContextualCompressionRetriever(
        base_compressor=compressor, base_retriever=YoutuRetriever(store=store, k=5)
    )
    assert [doc.id for doc in compression.invoke(QUERY)] == [f"d{i}" for i in best]
    reranking = YoutuRetriever(store=store, k=2, reranker=Reranker(tiny, device="cpu"))
    documents = reranking.invoke(QUERY)
    assert [doc.id for doc in documents] == [f"d{i}" for i in best]
    assert documents[1].metadata["relevance_score"] == pytest.approx(expected[best[1]], abs=1e-4)


def test_llamaindex_postprocessor(tiny: str, expected: np.ndarray) -> None:
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.youtu_rerank import YoutuRerank

    nodes = [
        NodeWithScore(node=TextNode(text=d, id_=f"n{i}"), score=0.0)
        for i, d in enumerate(DOCUMENTS)
    ]
    kept = YoutuRerank(model=tiny, top_n=3, device="cpu").postprocess_nodes(nodes, query_str=QUERY)
    best = list(np.argsort(-expected, kind="stable")[:3])
    assert [node.node.node_id for node in kept] == [f"n{i}" for i in best]
    np.testing.assert_allclose([node.score for node in kept], expected[best], atol=1e-4)
    assert YoutuRerank.class_name() == "YoutuRerank"


def test_serve_rerank_endpoint(tiny: str, expected: np.ndarray) -> None:
    from starlette.testclient import TestClient

    from youtu_rag import MINILM
    from youtu_rag.serve.app import EmbeddingService, create_app

    service = EmbeddingService(
        lambda: YoutuEmbedder(MINILM, device="cpu"),
        api_key="s3cret",
        load_reranker=lambda: Reranker(tiny, device="cpu", batch_size=2),
    )
    documents: list[object] = [
        text if i % 2 else {"text": text} for i, text in enumerate(DOCUMENTS)
    ]
    with TestClient(create_app(service)) as client:
        while client.get("/health").status_code != 200:
            pass
        headers = {"Authorization": "Bearer s3cret"}
        body = {"query": QUERY, "documents": documents, "top_n": 3, "return_documents": True}
        assert client.post("/v1/rerank", json=body).status_code == 401
        answer = client.post("/v1/rerank", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        best = list(np.argsort(-expected, kind="stable")[:3])
        assert [result["index"] for result in results] == best
        np.testing.assert_allclose(
            [result["relevance_score"] for result in results], expected[best], atol=1e-4
        )
        assert results[0]["document"] == {"text": DOCUMENTS[best[0]]}
        assert answer.json()["model"] == tiny and answer.json()["usage"]["total_tokens"] > 0
        bad = client.post(
            "/v1/rerank", json={"query": QUERY, "documents": ["ok", " "]}, headers=headers
        )
        assert bad.status_code == 400 and "document at index 1" in bad.json()["error"]["message"]
    plain = EmbeddingService(lambda: YoutuEmbedder(MINILM, device="cpu"))
    with TestClient(create_app(plain)) as client:
        while client.get("/health").status_code != 200:
            pass
        missing = client.post("/v1/rerank", json={"query": "q", "documents": ["d"]})
        assert missing.status_code == 404 and "--rerank" in missing.json()["error"]["message"]


def test_eval_and_bench_rerank(tiny: str) -> None:
    from tests.test_evaluation import SAMPLE

    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--beir",
            str(SAMPLE),
            "--model",
            "sentence-transformers/all-MiniLM-L6-v2",
            "--rerank",
            tiny,
            "--candidates",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    modes = json.loads(result.stdout)["modes"]
    assert set(modes) == {"dense", "dense+rerank"}
    # Only the top 5 move: recall at 100 cannot change.
    assert modes["dense+rerank"]["recall@100"] == modes["dense"]["recall@100"]
    bench = CliRunner().invoke(
        app,
        [
            "bench",
            "rerank",
            "--beir",
            str(SAMPLE),
            "--reranker",
            tiny,
            "--queries",
            "2",
            "--candidates",
            "4",
            "--repeats",
            "1",
            "--json",
        ],
    )
    assert bench.exit_code == 0, bench.output
    report = json.loads(bench.stdout)
    assert report["pairs"] == 8 and report["max_abs_diff"] <= 1e-4
    assert report["ratio"] > 0 and set(report["pairs_per_s"]) == {"youtu_rag", "cross_encoder"}


def test_rerank_run_reorders_the_top_candidates_only(tiny: str) -> None:
    from youtu_rag.measure.evaluation import BeirDataset, rank, rerank_run

    dataset = BeirDataset(
        corpus={f"d{i}": text for i, text in enumerate(DOCUMENTS)},
        queries={"q": QUERY},
        qrels={"q": {"d0": 1}},
    )
    run = {"q": {f"d{i}": float(10 - i) for i in range(len(DOCUMENTS))}}
    reranker = Reranker(tiny, device="cpu")
    reranked = rank(rerank_run(run, dataset, reranker, 3)["q"])
    scores = reranker.score(QUERY, DOCUMENTS[:3])
    assert reranked[:3] == [f"d{i}" for i in sorted(range(3), key=lambda i: -scores[i])]
    assert reranked[3:] == ["d3", "d4"]
    assert rank(run["q"]) == [f"d{i}" for i in range(5)]


def test_rag_chain_with_a_reranker(store: ChromaStore, tiny: str, expected: np.ndarray) -> None:
    from langchain_core.language_models import FakeListChatModel
    from langchain_youtu import YoutuReranker, YoutuRetriever, create_rag_chain

    chain = create_rag_chain(
        YoutuRetriever(store=store, k=5),
        FakeListChatModel(responses=["Thirty days [1]."]),
        reranker=YoutuReranker(model=tiny, top_n=2, device="cpu"),
    )
    result = chain.invoke(QUERY)
    best = list(np.argsort(-expected, kind="stable")[:2])
    assert [doc.id for doc in result["sources"]] == [f"d{i}" for i in best]
    assert result["answer"] == "Thirty days [1]."
