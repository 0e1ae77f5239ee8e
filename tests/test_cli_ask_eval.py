"""`ask` streams, filters and diversifies like `search`; `eval --limit` scores a quick subset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from typer.testing import CliRunner, Result

from youtu_rag import MINILM, cli
from youtu_rag.cli import app
from youtu_rag.measure.evaluation import DISTRACTORS_PER_QUERY, BeirDataset, limit_queries

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
BEIR_SAMPLE = REPO / "examples" / "beir_sample"
ANSWER = "Upsert overwrites the record [1]. 覆盖已有记录。"
runner = CliRunner()


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ask") / "db"
    result = run("index", SAMPLE_DOCS, "--model", MINILM, "--persist-dir", directory)
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> list[FakeListChatModel]:
    """No provider is reachable here: `--chat` gets LangChain's fake chat model, which streams
    its answer one character per chunk."""
    made: list[FakeListChatModel] = []

    def fake_chat_model(spec: str) -> FakeListChatModel:
        made.append(FakeListChatModel(responses=[ANSWER], error_on_chunk_number=12))
        return made[-1]

    monkeypatch.setattr(cli.collection, "_chat_model", fake_chat_model)
    return made


def test_ask_streams_when_asked_and_prints_what_arrived(db: Path, chat: list[Any]) -> None:
    question = "What does upsert do with an existing id?"
    common = ["-k", "2", "--chat", "fake:model", "--persist-dir", str(db)]
    # The fake model fails at its 12th chunk when streamed: what came before is on screen.
    streamed = run("ask", question, *common, "--stream")
    assert streamed.exit_code == 1
    assert streamed.stdout == ANSWER[:12]
    # Without streaming the same model answers in one piece (its failure is streaming-only).
    whole = run("ask", question, *common, "--no-stream")
    assert whole.exit_code == 0, whole.output
    assert whole.stdout.startswith(ANSWER + "\n\nSources:\n[1] ")


def test_ask_filters_and_diversifies_like_search(db: Path) -> None:
    chroma = str((SAMPLE_DOCS / "chroma.md").resolve())
    where = json.dumps({"source": chroma})
    question = "向量存放在哪里"
    filtered = run("ask", question, "-k", "3", "--where", where, "--persist-dir", db)
    assert filtered.exit_code == 0, filtered.output
    sources = [line for line in filtered.stdout.splitlines() if line.startswith("[")]
    assert sources and all(line.endswith(f"source: {chroma}") for line in sources)
    searched = run("search", question, "-k", "3", "--mmr", "--json", "--persist-dir", db)
    asked = run("ask", question, "-k", "3", "--mmr", "--persist-dir", db)
    assert asked.exit_code == 0, asked.output
    expected = [f"source: {hit['source']}" for hit in json.loads(searched.stdout)]
    assert [line.split("] ", 1)[1] for line in asked.stdout.splitlines() if line[:1] == "["] == (
        expected
    )


def test_limit_keeps_the_first_queries_their_documents_and_distractors() -> None:
    corpus = {f"d{i:03}": f"document {i}" for i in range(400)}
    qrels = {"q1": {"d390": 1, "d005": 0}, "q2": {"d391": 2}, "q3": {"d392": 1}}
    dataset = BeirDataset(corpus=corpus, queries={q: q for q in qrels}, qrels=qrels)
    subset = limit_queries(dataset, 2)
    assert list(subset.queries) == ["q1", "q2"] and set(subset.qrels) == {"q1", "q2"}
    others = [doc for doc in corpus if doc not in {"d390", "d391", "d005"}]
    expected = {"d390", "d391", "d005", *others[: 2 * DISTRACTORS_PER_QUERY]}
    assert set(subset.corpus) == expected
    assert "d392" not in subset.corpus  # judged only for a query left out
    assert limit_queries(dataset, 3) is dataset
    with pytest.raises(ValueError, match="at least 1"):
        limit_queries(dataset, 0)


def test_eval_limit_on_the_sample(tmp_path: Path) -> None:
    result = run("eval", "--beir", BEIR_SAMPLE, "--limit", "2", "-m", MINILM, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert (scores["queries"], scores["documents"]) == (2, 14)
