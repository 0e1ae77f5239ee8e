"""The CLI takes the model from the collection: a new user indexes once with --model and never
repeats it; YOUTU_RAG_MODEL names the model of a new collection; a mismatch names what differs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.store import ChromaStore, ModelMismatchError, describe
from youtu_rag.model.defaults import YOUTU_EMBEDDING

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
runner = CliRunner()
RECORDED = f"model: {MINILM} (recorded in collection 'youtu_rag')"


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(arg) for arg in args], env=env)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample folder indexed with --model MiniLM, the only time the model is named."""
    directory = tmp_path_factory.mktemp("model-choice") / "db"
    result = run("index", SAMPLE_DOCS, "--model", MINILM, "--persist-dir", directory)
    assert result.exit_code == 0, result.output
    assert f"model: {MINILM} (--model)" in result.stderr
    return directory


def test_search_and_ask_take_the_model_from_the_collection(db: Path) -> None:
    search = run("search", "which tokens are averaged?", "-k", "2", "--json", "--persist-dir", db)
    assert search.exit_code == 0, search.output
    assert RECORDED in search.stderr
    hits = json.loads(search.stdout)
    assert hits[0]["source"] == str((SAMPLE_DOCS / "masked-pooling.md").resolve())
    ask = run("ask", "向量数据库是什么", "-k", "1", "--persist-dir", db)
    assert ask.exit_code == 0, ask.output
    assert RECORDED in ask.stderr and ask.stdout.startswith("[1] source: ")
    # The same model given explicitly is the same thing.
    same = run("search", "Chroma", "-k", "1", "--json", "-m", MINILM, "--persist-dir", db)
    assert same.exit_code == 0 and f"model: {MINILM} (--model)" in same.stderr


def test_the_environment_names_the_model_of_a_new_collection(db: Path, tmp_path: Path) -> None:
    env = {"YOUTU_RAG_MODEL": MINILM}
    fresh = tmp_path / "db"
    result = run("index", SAMPLE_DOCS / "chroma.md", "--persist-dir", fresh, env=env)
    assert result.exit_code == 0, result.output
    assert f"model: {MINILM} (YOUTU_RAG_MODEL)" in result.stderr
    assert describe_model(fresh) == MINILM
    # An existing collection keeps its own model whatever the environment says.
    other = run("search", "Chroma", "--persist-dir", db, env={"YOUTU_RAG_MODEL": "x/unknown"})
    assert other.exit_code == 0, other.output
    assert RECORDED in other.stderr


def describe_model(directory: Path) -> str | None:
    import chromadb

    return describe(chromadb.PersistentClient(path=str(directory))).model


def test_another_model_is_refused_naming_both(db: Path) -> None:
    result = run("search", "x", "--model", YOUTU_EMBEDDING, "--persist-dir", db)
    assert result.exit_code == 1
    message = result.stderr
    assert f"was built with model '{MINILM}', not '{YOUTU_EMBEDDING}'" in message
    assert "leave out --model to use the collection's" in message


def test_same_model_other_rules_names_the_rule_not_the_model_twice(tmp_path: Path) -> None:
    """A collection built in Python with a document instruction: the CLI reopens it with that
    rule; an embedder without it is told which rule differs."""
    instructed = YoutuEmbedder(MINILM, device="cpu", document_instruction="Represent: ")
    store = ChromaStore.open(instructed, persist_dir=tmp_path / "db")
    store.upsert(["a", "b"], ["猫在沙发上睡觉。", "Stocks fell on Monday."], [{"source": "x"}] * 2)
    common = ["-k", "1", "--json", "--persist-dir", str(tmp_path / "db")]
    result = run("search", "where is the cat?", *common)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["id"] == "a"
    plain = YoutuEmbedder(MINILM, device="cpu")
    with pytest.raises(ModelMismatchError) as caught:
        ChromaStore.open(plain, persist_dir=tmp_path / "db", create=False)
    message = str(caught.value)
    assert "under other rules" in message and "document_prefix 'Represent: ' vs ''" in message
    assert f"not '{MINILM}'" not in message


def test_a_query_instruction_alone_may_change_for_search(db: Path) -> None:
    common = ["-k", "5", "--json", "--persist-dir", str(db)]
    plain = run("search", "masked mean pooling", *common)
    changed = run("search", "masked mean pooling", *common, "--query-instruction", "Find: ")
    assert changed.exit_code == 0, changed.output
    assert "query prefix: 'Find: ' instead of the collection's '' (document vectors" in (
        changed.stderr
    )
    scores = [hit["dense_score"] for hit in json.loads(plain.stdout)]
    changed_scores = [hit["dense_score"] for hit in json.loads(changed.stdout)]
    assert scores != changed_scores  # the queries were embedded differently
    # Writing stays strict: a store that creates or fills must match the record.
    other = YoutuEmbedder(MINILM, device="cpu", query_instruction="Find: ")
    with pytest.raises(ModelMismatchError, match="query_prefix '' vs 'Find: '"):
        ChromaStore.open(other, persist_dir=db)


def test_index_with_a_model_that_cannot_load_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "db"
    result = run("index", SAMPLE_DOCS, "--model", "someone/no-such-model", "--persist-dir", target)
    assert result.exit_code == 1
    assert "cannot load model 'someone/no-such-model'" in result.stderr
    assert not target.exists()


def _help_screens() -> list[list[str]]:
    """Every command path, groups included (typer's own click: read, not type-checked)."""
    screens: list[tuple[list[str], Any]] = [([], typer.main.get_command(app))]
    index = 0
    while index < len(screens):
        path, command = screens[index]
        index += 1
        children = getattr(command, "commands", {})
        screens += [([*path, name], child) for name, child in children.items()]
    return [path for path, _ in screens]


def test_every_help_screen_is_plain_and_names_the_default_model() -> None:
    screens = _help_screens()
    names = {" ".join(path) for path in screens}
    assert {"index", "search", "ask", "serve", "eval", "bench encode", "bench serve"} <= names
    for path in screens:
        result = run(*path, "--help", env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        text = result.stdout
        assert "<bool>" not in text and "…" not in text, (path, text)
        if "--model" in text:
            assert YOUTU_EMBEDDING in text, (path, text)
        if "--dtype" in text:
            assert "float32, float16 or bfloat16" in " ".join(text.split()), (path, text)


def test_warnings_are_cli_lines_not_logging_defaults(db: Path) -> None:
    """A query over the model's 256-token limit is cut; the command says so in its own voice."""
    command = Path(sys.executable).with_name("youtu-rag")
    query = "masked mean pooling averages text tokens " * 60
    result = subprocess.run(
        [command, "search", query, "-k", "1", "--persist-dir", db],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "warning: 1 of 1 texts exceed 256 tokens and were truncated\n" in result.stderr
    assert "WARNING:" not in result.stderr
