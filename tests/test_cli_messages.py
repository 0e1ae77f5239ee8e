"""The CLI says what happened: refused credentials, a server lost mid-run, BEIR files by path and
line, skipped files with their reasons; prints text literally; read commands create nothing; and
neither the CLI nor the library shows transformers' load bar or its spurious length warning."""

from __future__ import annotations

import http.client
import http.server
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import running_chroma
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.store import TOKEN_ENV
from youtu_rag.ingest.pipeline import make_splitter

runner = CliRunner()
TOKEN = "s3cret-token"


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(arg) for arg in args], env=env)


def one_line_error(result: Result, *, after_progress: bool = False) -> str:
    """The message of the one ``error:`` line a failed command prints (exit status 1)."""
    assert result.exit_code == 1, result.output
    stderr = result.stderr
    if after_progress:  # `index` says which model, then draws its progress bar
        assert stderr.startswith("model: "), stderr
        stderr = stderr[stderr.index("\n") + 1 :]
        assert stderr.startswith("\rIndexing:"), stderr
        stderr = stderr[stderr.rindex("\n", 0, -1) + 1 :]
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    return stderr.removeprefix("error: ").rstrip("\n")


# --- a token-checking proxy in front of a real `chroma run` (Chroma 1.x leaves auth to a proxy) --


def auth_proxy(upstream: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    target = upstream.removeprefix("http://")

    class Proxy(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            given = self.headers.get("Authorization")
            if given != f"Bearer {TOKEN}":
                status = 401 if given is None else 403
                body = b'{"error": "denied"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            length = int(self.headers.get("Content-Length") or 0)
            connection = http.client.HTTPConnection(target, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            connection.request(self.command, self.path, self.rfile.read(length), headers)
            response = connection.getresponse()
            body = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_refused_credentials_are_reported_as_such(chroma_server: str, tmp_path: Path) -> None:
    proxy, url = auth_proxy(chroma_server)
    try:
        without = one_line_error(run("info", "--url", url, env={TOKEN_ENV: ""}))
        assert without == (
            f"the Chroma server at {url} refused the request as unauthenticated (HTTP 401): "
            f"it needs a token; put it in {TOKEN_ENV}"
        )
        wrong = one_line_error(run("info", "--url", url, env={TOKEN_ENV: "guess"}))
        assert "forbidden (HTTP 403): the token in YOUTU_RAG_CHROMA_TOKEN was not accepted" in wrong
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "a.md").write_text("Tokens open the door.", encoding="utf-8")
        common = ["--url", url, "--collection", "behind-proxy", "--model", MINILM]
        indexed = run("index", docs, *common, env={TOKEN_ENV: TOKEN})
        assert indexed.exit_code == 0, indexed.output
        found = run("search", "door", "--json", *common, env={TOKEN_ENV: TOKEN})
        assert found.exit_code == 0 and '"Tokens open the door."' in found.stdout
    finally:
        proxy.shutdown()


@pytest.fixture
def own_chroma_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `chroma run` of this test's own, to be killed mid-run."""
    with running_chroma(tmp_path / "srv") as server:
        yield server


def test_a_server_lost_mid_run_is_named(
    own_chroma_server: tuple[subprocess.Popen[bytes], str],
    minilm: YoutuEmbedder,
    tmp_path: Path,
) -> None:
    server, url = own_chroma_server
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(4):
        text = "\n\n".join(f"Doc {number} part {part} about pooling." for part in range(60))
        (docs / f"d{number}.md").write_text(text, encoding="utf-8")

    class KillServerAfterFirstWrite(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("wrote") and server.poll() is None:
                server.kill()
                server.wait()

    logger = logging.getLogger("youtu_rag.ingest.pipeline")
    handler, level = KillServerAfterFirstWrite(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = run("index", docs, "--url", url, "--model", MINILM, "--chunk-size", "16")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert server.returncode is not None  # it was killed mid-run
    message = one_line_error(result, after_progress=True)
    assert message.startswith(f"lost the connection to the Chroma server at {url} (")
    assert message.endswith("run the command again once the server is back")


# --- BEIR files -------------------------------------------------------------------------------


def beir_folder(root: Path, corpus: str, queries: str, qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return root


GOOD_CORPUS = '{"_id": "d1", "text": "Cats purr."}\n{"_id": "d2", "title": "T", "text": "Dogs."}\n'
GOOD_QUERIES = '{"_id": "q1", "text": "Why do cats purr?"}\n'
HEADER = "query-id\tcorpus-id\tscore\n"


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        (
            GOOD_CORPUS + '{"_id": "d3", "body": "no text"}\n',
            GOOD_QUERIES,
            HEADER + "q1\td1\t1\n",
            "corpus.jsonl:3: the record has no 'text'",
        ),
        (
            GOOD_CORPUS,
            '\n{"_id": "q1", "text": }\n',
            HEADER + "q1\td1\t1\n",
            "queries.jsonl:2: not valid JSON (Expecting value at column 23)",
        ),
        (
            GOOD_CORPUS,
            GOOD_QUERIES,
            HEADER + "q1\td1\t1\nq1\td2\thigh\n",
            "test.tsv:3: score 'high'",
        ),
        (GOOD_CORPUS, GOOD_QUERIES, HEADER + "q1\td9\t1\n", "test.tsv:2: unknown document 'd9'"),
        (GOOD_CORPUS, GOOD_QUERIES, HEADER + "\nq7\td1\t1\n", "test.tsv:3: unknown query 'q7'"),
        (GOOD_CORPUS, GOOD_QUERIES, HEADER, "test.tsv: judges no query"),
        (GOOD_CORPUS, GOOD_QUERIES, "", "test.tsv:1: must be the header"),
    ],
)
def test_beir_errors_name_file_and_line(
    corpus: str, queries: str, qrels: str, message: str, tmp_path: Path
) -> None:
    folder = beir_folder(tmp_path / "beir", corpus, queries, qrels)
    error = one_line_error(run("eval", "--beir", folder, "--model", MINILM))
    assert error.startswith(str(folder)) and message in error


# --- terminal output --------------------------------------------------------------------------


def test_text_is_printed_literally_and_reads_create_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "notes :x: [bold]"
    docs.mkdir()
    passage = "Emoji codes :x: :smile: and [bold]markup[/bold] stay as typed."
    (docs / "literal.md").write_text(passage, encoding="utf-8")
    db = tmp_path / "db"
    assert run("index", docs, "--model", MINILM, "--persist-dir", db).exit_code == 0

    found = run("search", "emoji codes", "-k", "1", "--model", MINILM, "--persist-dir", db)
    assert found.exit_code == 0, found.output
    header, preview = found.stdout.splitlines()
    assert header.endswith(f"{docs.resolve()}/literal.md  #0  (d#1 l#1)")
    assert preview == f"   {passage}"
    asked = run("ask", "emoji codes", "-k", "1", "--model", MINILM, "--persist-dir", db)
    assert asked.stdout == f"[1] source: {docs.resolve()}/literal.md\n{passage}\n"

    # Read commands on a folder that holds no index, or on none: an error, and nothing created.
    empty = tmp_path / "not-an-index :x:"
    empty.mkdir()
    for target in (empty, tmp_path / "missing"):
        for command in (
            ["search", "x", "--model", MINILM],
            ["ask", "x", "--model", MINILM],
            ["info"],
        ):
            error = one_line_error(run(*command, "--persist-dir", target))
            assert error == f"no index at {target}: build one first with `youtu-rag index PATH`"
    assert list(empty.iterdir()) == [] and not (tmp_path / "missing").exists()


def test_skipped_files_are_listed_with_exit_status_3(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("A good file.", encoding="utf-8")
    (docs / "latin1.txt").write_bytes("Crème brûlée.".encode("latin-1"))
    result = run("index", docs, "--model", MINILM, "--persist-dir", tmp_path / "db")
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith(
        "Indexed 2 files into 'youtu_rag': 1 new or changed, 0 unchanged, 0 empty skipped, "
        "1 skipped (listed above); 1 chunks written"
    )
    assert (
        f"skipped {docs.resolve()}/latin1.txt: not valid UTF-8 text (byte 0xe8 at offset 2); "
        "convert it to UTF-8" in result.stderr
    )


def test_no_load_bar_or_length_warning(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    paragraph = " ".join(["pooling retrieval chroma"] * 300)  # past MiniLM's 512 positions
    long_text = f"{paragraph}\n\n{paragraph}"  # the splitter measures each paragraph whole
    # Library: a fresh model and tokenizer (a dtype not loaded yet; transformers warns once per
    # tokenizer), then splitting a text longer than the model reads.
    warnings: list[str] = []
    collect = logging.Handler(logging.WARNING)
    collect.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    transformers_logger = logging.getLogger("transformers")  # it does not propagate to root
    transformers_logger.addHandler(collect)
    try:
        embedder = YoutuEmbedder(MINILM, device="cpu", dtype="bfloat16")
        assert len(make_splitter(embedder, chunk_size=100).split_text(long_text)) > 5
    finally:
        transformers_logger.removeHandler(collect)
    assert warnings == []
    library = capfd.readouterr()
    assert "Loading weights" not in library.err + library.out

    # The installed command in a fresh process: its own progress bar only.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "long.txt").write_text(long_text, encoding="utf-8")
    db = tmp_path / "db"
    completed = subprocess.run(
        [
            Path(sys.executable).with_name("youtu-rag"),
            "index",
            docs,
            "-m",
            MINILM,
            "--persist-dir",
            db,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert lines[0] == f"model: {MINILM} (--model)", completed.stderr
    assert lines[1:] and all(line.startswith("Indexing:") for line in lines[1:]), completed.stderr
