"""``RunRerank`` through the real SDK against the protocol-faithful stand-in (signature checked,
limits enforced): no call exceeds 60 documents or 2,000 characters, scores come back in the
documents' order, nothing is lost; and the same reranker behind the CLI and LangChain."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.tencent_cloud_standin import MAX_CHARACTERS, MAX_DOCS, SECRET_ID, SECRET_KEY
from tests.test_tencent_cloud import StandIn, cloud_env, standin, standin_server  # noqa: F401
from youtu_rag import TencentCloudError, TencentCloudReranker, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.store import ChromaStore

QUERY = "报销 发票 invoice deadline"


def expected_score(document: str) -> float:
    words = {"报销", "发票", "invoice", "deadline"}
    return len(words & set(document.lower().split())) / len(words)


def reranker(standin: StandIn, **options: Any) -> TencentCloudReranker:  # noqa: F811
    return TencentCloudReranker(
        endpoint=standin.endpoint, secret_id=SECRET_ID, secret_key=SECRET_KEY, **options
    )


def test_limits_order_and_nothing_lost(standin: StandIn) -> None:  # noqa: F811
    documents = [
        f"第{i}条 {'报销 发票' if i % 3 == 0 else '差旅'} invoice "
        + ("deadline " if i % 5 == 0 else "")
        + "x" * (i * 7)
        for i in range(150)
    ] + ["长" * 2500 + " 报销"]  # cannot fit beside the query: cut, said once
    rerank = reranker(standin, concurrency=3)
    scores = rerank.score(QUERY, documents)
    cut = documents[-1][: MAX_CHARACTERS - len(QUERY)]
    assert scores == [expected_score(doc) for doc in [*documents[:-1], cut]]
    calls = [call for call in standin.log()["calls"] if call["Action"] == "RunRerank"]
    assert all(len(call["Docs"]) <= MAX_DOCS for call in calls)
    assert all(len(call["Query"]) + sum(map(len, call["Docs"])) <= MAX_CHARACTERS for call in calls)
    assert [doc for call in calls for doc in call["Docs"]].count(cut) == 1
    assert sorted(doc for call in calls for doc in call["Docs"]) == sorted([*documents[:-1], cut])
    assert {call["Model"] for call in calls} == {"lke-reranker-base"}
    assert rerank.warning_counts() == {"truncated": 1} and rerank.total_tokens > 0
    ranked = rerank.rank(QUERY, documents[:10], top_n=3)
    assert [score for _, score in ranked] == sorted(scores[:10], reverse=True)[:3]


def test_errors_name_the_code_and_transient_ones_are_retried(standin: StandIn) -> None:  # noqa: F811
    standin.control(fail=["InternalError"])
    assert reranker(standin).score(QUERY, ["报销 发票"]) == [0.5]
    standin.control(fail=["InvalidParameterValue"])
    with pytest.raises(TencentCloudError, match=r"RunRerank .*InvalidParameterValue"):
        reranker(standin, max_retries=0).score(QUERY, ["报销 发票"])
    wrong = TencentCloudReranker(
        endpoint=standin.endpoint, secret_id=SECRET_ID, secret_key="a-wrong-key"
    )
    with pytest.raises(TencentCloudError, match="AuthFailure") as failure:
        wrong.score(QUERY, ["x"])
    assert SECRET_ID not in str(failure.value) and "a-wrong-key" not in str(failure.value)


def test_cli_search_reranks_with_run_rerank(
    cloud_env: StandIn,  # noqa: F811
    minilm: YoutuEmbedder,
    tmp_path: Any,
) -> None:
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db", collection="cloud")
    docs = ["报销 发票 invoice deadline", "差旅 travel", "发票 invoice"]
    store.upsert([f"d{i}" for i in range(3)], docs, [{"source": f"/{i}.md"} for i in range(3)])
    result = CliRunner().invoke(
        app,
        [
            "search",
            QUERY,
            "-k",
            "2",
            "--json",
            "--persist-dir",
            str(tmp_path / "db"),
            "--collection",
            "cloud",
            "--rerank",
            "tencent-cloud:lke-reranker-base",
        ],
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert [(hit["id"], hit["rerank_score"]) for hit in hits] == [("d0", 1.0), ("d2", 0.5)]
