"""A CLI that answers at once: validation before anything loads, ``info`` without the model's
libraries, ``serve`` listening before it loads, one error for a missing model, no database left
by a failed ``index``, ``ask`` with nothing to answer from, the same unknown-token warning
everywhere, ``--server`` and ``shell`` answering without reloading, tables as wide as they are
when piped."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.cli_process import COMMAND, run_cli
from tests.server_process import youtu_rag_serve
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.model.resolution import ModelNotFoundError
from youtu_rag.serve.process import ServerProcess, free_port, running_server, stop_process

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
BEIR = REPO / "examples" / "beir_sample"
runner = CliRunner()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``youtu-rag serve`` of MiniLM as the collection below records it (no instruction)."""
    with youtu_rag_serve(tmp_path_factory.mktemp("serve"), "--threads", "1") as server:
        yield server


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample documents (English, and a Chinese page) indexed with MiniLM."""
    folder = tmp_path_factory.mktemp("docs")
    for source in SAMPLE_DOCS.iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    (folder / "zh.md").write_text(
        "# 池化\n\n掩码平均池化只对文本的词元取平均、不包括指令。\n", encoding="utf-8"
    )
    target = tmp_path_factory.mktemp("db") / "index"
    result = runner.invoke(app, ["index", str(folder), "-m", MINILM, "--persist-dir", str(target)])
    assert result.exit_code == 0, result.output
    return target


def _fresh(*args: str) -> dict[str, object]:
    """Run the CLI in a fresh interpreter and say which heavy libraries it imported."""
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from youtu_rag.cli import app\n"
        f"result = CliRunner().invoke(app, {list(args)!r})\n"
        "print(json.dumps({'exit': result.exit_code, 'stderr': result.stderr,\n"
        "    'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [["search", ""], ["search", "   "], ["ask", "\t"], ["search", "x", "--mode", "fuzzy"]],
)
def test_bad_arguments_fail_before_the_model_libraries_load(args: list[str]) -> None:
    seen = _fresh(*args, "--model", MINILM)
    assert seen["exit"] != 0
    assert seen["torch"] is False and seen["transformers"] is False, seen
    assert (
        "QUERY is empty" in str(seen["stderr"])
        or "QUESTION is empty" in str(seen["stderr"])
        or "mode" in str(seen["stderr"])
    )


def test_info_loads_no_model_library(db: Path) -> None:
    seen = _fresh("info", "--persist-dir", str(db))
    assert seen["exit"] == 0, seen
    assert seen["torch"] is False and seen["transformers"] is False


def test_ask_with_no_passage_says_so_and_sends_nothing(db: Path) -> None:
    where = ["--persist-dir", str(db), "--mode", "lexical"]
    for question in ("zzzqqq xxyyzz", "天气晴朗适合散步"):
        asked = runner.invoke(app, ["ask", question, *where])
        searched = runner.invoke(app, ["search", question, *where])
        assert asked.exit_code == searched.exit_code == 0
        assert "no matching passages" in asked.stderr and "no matching passages" in searched.stderr
        assert asked.stdout == "" and "No chat model" not in asked.stderr


def test_a_failed_index_leaves_no_database(tmp_path: Path) -> None:
    target = tmp_path / "new"
    env = {"TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": ""}
    api = "tencent-cloud:youtu-embedding"
    failed = run_cli("index", SAMPLE_DOCS, "-m", api, "--persist-dir", target, env=env)
    assert failed.returncode == 1 and "credentials" in failed.stderr
    assert not target.exists()
    # A folder that was there stays, emptied of what the run made.
    target.mkdir()
    (target / "mine.txt").write_text("keep me", encoding="utf-8")
    failed = run_cli("index", SAMPLE_DOCS, "-m", api, "--persist-dir", target, env=env)
    assert failed.returncode == 1
    assert sorted(path.name for path in target.iterdir()) == ["mine.txt"]
    searched = runner.invoke(app, ["search", "pooling", "--persist-dir", str(target)])
    assert searched.exit_code == 1 and "no index at" in searched.stderr


def test_a_missing_model_is_one_error_everywhere(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    expected = f"cannot load model {missing!r}: no such directory"
    with pytest.raises(ModelNotFoundError) as raised:
        YoutuEmbedder(missing)
    assert str(raised.value).startswith(expected)
    from youtu_rag.model.reranker import Reranker

    with pytest.raises(ModelNotFoundError, match="no such directory"):
        Reranker(missing)
    from langchain_youtu import YoutuEmbeddings

    with pytest.raises(ModelNotFoundError, match="no such directory"):
        YoutuEmbeddings(model_name=missing)
    beir = BEIR
    commands = [
        ["index", str(SAMPLE_DOCS), "--persist-dir", str(tmp_path / "db"), "-m", missing],
        ["verify", "-m", missing],
        ["serve", "-m", missing],
        ["eval", "--beir", str(beir), "-m", missing],
        ["bench", "serve", "--beir", str(beir), "-m", missing],
        ["bench", "encode", "--beir", str(beir), "-m", missing],
    ]
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.startswith(f"error: {expected}"), (command, result.stderr)
    assert not (tmp_path / "db").exists()


def test_serve_listens_before_it_loads_and_a_busy_port_fails_first(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(COMMAND), "serve", "-m", MINILM, "--port", str(port), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        answers: list[tuple[int, str]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            answers.append((health.status_code, health.text))
            if health.status_code == 200:
                break
            time.sleep(0.02)
        assert answers[-1][0] == 200, answers
        # /health answered while the model was still loading.
        assert answers[0][0] == 503 and "loading" in answers[0][1], answers[0]
        busy = run_cli("serve", "-m", MINILM, "--port", str(port))
        assert busy.returncode == 1
        assert busy.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}"), busy.stderr
        assert "Serving" not in busy.stderr
    finally:
        stop_process(process)


def test_busy_port_is_refused_before_the_announcement_without_a_server() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "-m", MINILM, "--port", str(port)])
    assert result.exit_code == 1 and "Serving" not in result.output
    assert "cannot listen" in result.stderr


def test_the_unknown_token_warning_is_the_same_everywhere(
    db: Path, served: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    said = "could not read"
    same = "of the text it was given"
    for command in ("search", "ask"):
        chinese = run_cli(command, "青铜器的纹饰", "--persist-dir", db)
        assert chinese.returncode == 0 and said in chinese.stderr and same in chinese.stderr
        english = run_cli(command, "bronze vessels", "--persist-dir", db)
        assert english.returncode == 0 and said not in english.stderr
    from langchain_youtu import YoutuEmbeddings

    with caplog.at_level(logging.WARNING):
        YoutuEmbeddings(model_name=MINILM, device="cpu").embed_query("珍贵的青铜器")
    assert any(said in r.getMessage() and same in r.getMessage() for r in caplog.records)
    # The server logs it too, in the same words.
    answer = httpx.post(f"{served.url}/v1/embeddings", json={"input": ["青铜器的纹饰非常精美"]})
    assert answer.status_code == 200
    assert said in served.log_text() and same in served.log_text()


def test_search_through_a_running_server_equals_the_local_search(
    db: Path, served: ServerProcess
) -> None:
    where = ["--persist-dir", str(db), "--json"]
    for query in ("How is the instruction masked?", "掩码平均池化"):
        local = runner.invoke(app, ["search", query, *where])
        remote = runner.invoke(app, ["search", query, *where, "--server", served.url])
        assert local.exit_code == remote.exit_code == 0, remote.output
        here, there = json.loads(local.stdout), json.loads(remote.stdout)
        assert [hit["id"] for hit in here] == [hit["id"] for hit in there]
        assert np.allclose([h["score"] for h in here], [h["score"] for h in there], atol=1e-5)
    from_env = runner.invoke(
        app,
        ["ask", "masked pooling", "--persist-dir", str(db)],
        env={"YOUTU_RAG_SERVER": served.url},
    )
    assert from_env.exit_code == 0 and "masked-pooling.md" in from_env.stdout
    nobody = runner.invoke(
        app, ["search", "x", "--persist-dir", str(db), "--server", "http://127.0.0.1:9"]
    )
    assert nobody.exit_code == 1 and "error:" in nobody.stderr


def test_a_server_of_another_model_is_refused(
    db: Path, tiny_youtu_dir: str, tmp_path: Path
) -> None:
    with running_server(tiny_youtu_dir, tmp_path, "--threads", "1") as other:
        result = runner.invoke(
            app, ["search", "pooling", "--persist-dir", str(db), "--server", other.url]
        )
    assert result.exit_code == 1
    assert f"serves {tiny_youtu_dir!r}, not {MINILM!r}" in result.stderr


def test_shell_loads_once_and_answers_each_line(db: Path) -> None:
    lines = "How is the instruction masked?\n\n掩码平均池化\nexit\nnever read\n"
    result = run_cli("shell", "--persist-dir", db, "-k", "1", "--json", stdin=lines)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(block) for block in _json_blocks(result.stdout)]
    assert len(answers) == 2
    assert answers[0][0]["source"].endswith("masked-pooling.md")
    assert answers[1][0]["source"].endswith("zh.md")
    assert result.stderr.count("model: ") == 1


def _json_blocks(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line == "]":
            blocks.append("\n".join(current))
            current = []
    return blocks


def test_piped_tables_keep_their_width(capsys: pytest.CaptureFixture[str]) -> None:
    from youtu_rag.cli.measuring import _print_rows

    method = "a method whose name is much wider than eighty columns, " * 3
    _print_rows("title", [{"method": method.strip(), "seconds": 1.5}])
    printed = capsys.readouterr().out
    assert method.strip() in printed
    widths = {len(line) for line in printed.splitlines()[1:]}
    assert len(widths) == 1 and widths.pop() > 160


def test_bench_cli_reports_each_step(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "cli",
            str(SAMPLE_DOCS),
            "-m",
            MINILM,
            "--repeats",
            "1",
            "--queries",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["steps"]) == {
        "index",
        "--help",
        "info",
        "search (loads the model)",
        "search --server (repeated)",
        "shell, each further query",
    }
    assert all(seconds >= 0 for seconds in report["steps"].values())
    assert report["goal_s"] == 0.5 and isinstance(report["goal_met"], bool)
