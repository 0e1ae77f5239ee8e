"""`youtu-rag index / search / ask / info` end to end with MiniLM on the shipped sample folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from typer.testing import CliRunner, Result

from youtu_rag import MINILM, cli
from youtu_rag.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
runner = CliRunner()


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the sample folder and the database it was indexed into."""
    root = tmp_path_factory.mktemp("cli")
    docs = Path(shutil.copytree(SAMPLE_DOCS, root / "docs"))
    result = run("index", docs, "--model", MINILM, "--persist-dir", root / "db")
    assert result.exit_code == 0, result.output
    files = len(list(docs.iterdir()))
    assert f"Indexed {files} files into 'youtu_rag': {files} new or changed" in result.stdout
    return docs, root / "db"


def test_rerun_writes_nothing(indexed: tuple[Path, Path]) -> None:
    docs, db = indexed
    result = run("index", docs, "--model", MINILM, "--persist-dir", db)
    assert result.exit_code == 0, result.output
    assert "0 new or changed, 5 unchanged" in result.stdout
    assert "0 chunks written, 0 removed" in result.stdout


def test_search_json(indexed: tuple[Path, Path]) -> None:
    docs, db = indexed
    query = "which tokens are left out of the average?"
    result = run("search", query, "-k", "3", "--json", "--model", MINILM, "--persist-dir", db)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    sides = {"dense_rank", "dense_score", "lexical_rank", "lexical_score"}
    sides |= {"fallback", "rerank_score"}
    assert all(hit.keys() == {"id", "score", "text", "source", "metadata", *sides} for hit in hits)
    assert hits[0]["dense_rank"] is not None  # hybrid by default: both sides report
    assert all(hit["fallback"] is None for hit in hits)
    assert hits[0]["source"] == str((docs / "masked-pooling.md").resolve())
    assert hits[0]["metadata"]["source"] == hits[0]["source"]
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
    assert "masked mean pooling" in hits[0]["text"]


def test_search_where_and_text_output(indexed: tuple[Path, Path]) -> None:
    docs, db = indexed
    chroma = str((docs / "chroma.md").resolve())
    where = json.dumps({"source": chroma})
    result = run("search", "pooling", "--where", where, "--json", "--persist-dir", db, "-m", MINILM)
    assert result.exit_code == 0, result.output
    assert {hit["source"] for hit in json.loads(result.stdout)} == {chroma}

    text = run("search", "What is Chroma?", "-k", "1", "--model", MINILM, "--persist-dir", db)
    assert text.exit_code == 0, text.output
    first_line, preview = text.stdout.splitlines()
    assert first_line.startswith("1. ") and f"{chroma}  #0  (d#1" in first_line
    assert preview.startswith("   # Chroma Chroma is an open-source vector database.")


def test_info_json(indexed: tuple[Path, Path]) -> None:
    _, db = indexed
    result = run("info", "--json", "--persist-dir", db)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert {key: info[key] for key in ("collection", "count", "model", "dimension")} == {
        "collection": "youtu_rag",
        "count": 7,  # the Markdown files by section: 7 chunks (5 before chunking rules v2)
        "model": MINILM,
        "dimension": 384,
    }
    text = run("info", "--persist-dir", db)
    assert text.exit_code == 0 and f"model: {MINILM}" in text.stdout


def test_ask_without_chat_model_prints_the_context(indexed: tuple[Path, Path]) -> None:
    docs, db = indexed
    question = "What does upsert do with an existing id?"
    result = run("ask", question, "-k", "2", "--model", MINILM, "--persist-dir", db)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"[1] source: {(docs / 'chroma.md').resolve()}\n# Chroma")
    assert "\n\n[2] source: " in result.stdout and "[3]" not in result.stdout
    assert "No chat model configured" in result.stderr


def test_ask_with_a_chat_model(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider is reachable here, so `--chat` gets LangChain's fake chat model instead."""
    docs, db = indexed
    specs: list[str] = []

    def fake_chat_model(spec: str) -> FakeListChatModel:
        specs.append(spec)
        return FakeListChatModel(responses=["Upsert overwrites the record [1]."])

    monkeypatch.setattr(cli.collection, "_chat_model", fake_chat_model)
    question = "What does upsert do with an existing id?"
    result = run(
        "ask", question, "-k", "2", "--chat", "fake:model", "-m", MINILM, "--persist-dir", db
    )
    assert result.exit_code == 0, result.output
    assert specs == ["fake:model"]
    answer, sources = result.stdout.split("\n\nSources:\n")
    assert answer == "Upsert overwrites the record [1]."
    assert sources.splitlines()[0] == f"[1] {(docs / 'chroma.md').resolve()}"
    assert len(sources.splitlines()) == 2


def test_errors_are_one_line(indexed: tuple[Path, Path], tiny_youtu_dir: str) -> None:
    docs, db = indexed
    common = ["--model", MINILM, "--persist-dir", str(db)]
    assert_one_line_error(
        run("search", "x", *common, "--collection", "nope-collection"),
        "collection 'nope-collection' does not exist",
    )
    assert_one_line_error(run("info", "--persist-dir", db.parent / "missing"), "no index at")
    assert_one_line_error(
        run("search", "x", "--model", tiny_youtu_dir, "--persist-dir", db),
        f"was built with model '{MINILM}', not '{tiny_youtu_dir}'",
    )
    assert_one_line_error(run("search", "x", *common, "--where", "{source"), "not valid JSON")
    # Brackets in a message are text, not rich markup (which would raise on "[/name]").
    assert_one_line_error(
        run("info", "--persist-dir", db, "--collection", "bad[/name]"),
        "collection name 'bad[/name]' is not valid",
    )
    assert_one_line_error(run("ask", "x", *common, "--chat", "gpt"), "PROVIDER:MODEL")
    assert_one_line_error(
        run("ask", "x", *common, "--chat", "no-such-provider:model"),
        "cannot start chat model 'no-such-provider:model'",
    )
    assert_one_line_error(run("index", docs / "missing", *common), "no such file or folder")
    missing_model = str(db.parent / "no-model")
    assert_one_line_error(
        run("index", docs, "--model", missing_model, "--persist-dir", db.parent / "other"),
        f"cannot load model {missing_model!r}: no such directory",
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        assert_one_line_error(run("info", "--url", url), f"cannot reach the Chroma server at {url}")


def test_hub_model_offline_is_one_line(tmp_path: Path) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    # The default model, tencent/Youtu-Embedding, is not cached here and the hub is offline.
    assert_one_line_error(
        run("index", SAMPLE_DOCS, "--persist-dir", tmp_path / "db"),
        "cannot load model 'tencent/Youtu-Embedding'",
    )


def test_index_and_search_through_a_server(chroma_server: str) -> None:
    common = ["--model", MINILM, "--url", chroma_server, "--collection", "cli-server"]
    result = run("index", SAMPLE_DOCS, *common)
    assert result.exit_code == 0, result.output
    hits = json.loads(run("search", "What is Chroma?", "-k", "1", "--json", *common).stdout)
    assert hits[0]["source"] == str((SAMPLE_DOCS / "chroma.md").resolve())
    info = json.loads(run("info", "--json", "--url", chroma_server, "-c", "cli-server").stdout)
    assert (info["collection"], info["count"]) == ("cli-server", 7)
    assert hits[0]["metadata"]["section"] == "Chroma"


def test_the_installed_command(tmp_path: Path) -> None:
    """The README's main job through the real `youtu-rag` executable, in a fresh process."""
    command = Path(sys.executable).with_name("youtu-rag")
    db = tmp_path / "db"
    index = subprocess.run(
        [command, "index", SAMPLE_DOCS, "--model", MINILM, "--persist-dir", db],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert index.returncode == 0, index.stderr
    assert "Indexed 5 files" in index.stdout
    search = run("search", "masked mean pooling", "--json", "--model", MINILM, "--persist-dir", db)
    assert json.loads(search.stdout)[0]["source"].endswith("masked-pooling.md")
