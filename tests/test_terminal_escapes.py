"""Nothing read from a document, a file name or an error reaches the terminal as a control
sequence: every human-readable output shows ESC and friends escaped (``\\x1b``); ``--json``
output keeps the exact text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from youtu_rag import MINILM
from youtu_rag.cli import app
from youtu_rag.cli.app import escape_controls

runner = CliRunner()
CLEAR = "\x1b[2J"
TITLE = "\x1b]0;owned\x07"
TEXT = f"Masked mean pooling {CLEAR}averages{TITLE} the text tokens. 掩码平均池化{CLEAR}只取文本。"


def assert_escaped(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output, repr(output)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    """(database, the `index` run's store options, its stderr): a document whose text and name
    carry escapes, and a Latin-1 file with an escape in its name that is skipped."""
    root = tmp_path_factory.mktemp("escapes")
    docs = root / "docs"
    docs.mkdir()
    (docs / f"evil{TITLE}.md").write_text(TEXT, encoding="utf-8")
    (docs / f"latin{CLEAR}.txt").write_bytes("café crème, naïve façade".encode("latin-1"))
    db = root / "db"
    options = ["--model", MINILM, "--persist-dir", str(db)]
    result = runner.invoke(app, ["index", str(docs), *options])
    assert result.exit_code == 3, result.output
    return db, options, result.stderr


def test_index_skipped_lines_are_escaped(indexed: tuple[Path, list[str], str]) -> None:
    _, _, stderr = indexed
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and "latin\\x1b[2J.txt" in skipped[0], stderr
    assert_escaped(stderr)


def test_search_shows_escapes_and_json_keeps_them(indexed: tuple[Path, list[str], str]) -> None:
    _, options, _ = indexed
    shown = runner.invoke(app, ["search", "池化 pooling", *options])
    assert shown.exit_code == 0, shown.output
    assert_escaped(shown.stdout)
    assert "evil\\x1b]0;owned\\x07.md" in shown.stdout and "\\x1b[2Javerages" in shown.stdout
    exact = runner.invoke(app, ["search", "池化 pooling", "--json", *options])
    hits = json.loads(exact.stdout)
    assert hits[0]["text"] == TEXT and hits[0]["source"].endswith(f"evil{TITLE}.md")
    assert_escaped(exact.stdout)  # JSON's own \u001b escapes


def test_ask_context_is_escaped(indexed: tuple[Path, list[str], str]) -> None:
    _, options, _ = indexed
    result = runner.invoke(app, ["ask", "What does pooling average? 池化取什么?", *options])
    assert result.exit_code == 0, result.output
    assert "\\x1b[2Javerages" in result.stdout
    assert_escaped(result.output)


def test_error_lines_are_escaped(indexed: tuple[Path, list[str], str]) -> None:
    _, options, _ = indexed
    result = runner.invoke(app, ["search", "pooling", "--collection", f"notes{CLEAR}", *options])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "notes\\x1b[2J" in result.stderr
    assert_escaped(result.stderr)


def test_escape_controls_keeps_layout_and_text() -> None:
    assert escape_controls("a\tb\nc é 中") == "a\tb\nc é 中"
    assert escape_controls("\x1b[31m\x9b\u202e\x00") == "\\x1b[31m\\x9b\\u202e\\x00"
