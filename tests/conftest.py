"""Shared fixtures: the tiny random ``youtu`` model and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# Nothing in the tests may reach the Hugging Face hub. Set before transformers is imported: it
# and huggingface_hub read these once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from tests.server_process import QUERY_INSTRUCTION, youtu_rag_serve
from tests.tiny_youtu import build_tiny_youtu
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.model import loading
from youtu_rag.serve.process import free_port, stop_process

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


@pytest.fixture(scope="session", autouse=True)
def _lexical_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Lexical indexes of server collections go in a temporary cache, not the user's home (the
    variable reaches the CLI subprocesses too)."""
    previous = os.environ.get("YOUTU_RAG_CACHE_DIR")
    os.environ["YOUTU_RAG_CACHE_DIR"] = str(tmp_path_factory.mktemp("youtu_rag_cache"))
    yield
    if previous is None:
        os.environ.pop("YOUTU_RAG_CACHE_DIR", None)
    else:
        os.environ["YOUTU_RAG_CACHE_DIR"] = previous


@pytest.fixture(autouse=True)
def _restore_shared_models() -> Iterator[None]:
    """Put back the shared models a test evicted (benchmarks and distributed runs clear the
    process-wide cache), so later tests find the session fixtures' backbones still shared."""
    saved = dict(loading._cache)
    yield
    with loading._cache_lock:
        loading._cache.update(saved)


@pytest.fixture(scope="session")
def tiny_youtu_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local directory holding a tiny randomly initialised youtu model and its tokenizer."""
    return str(build_tiny_youtu(tmp_path_factory.mktemp("tiny_youtu")))


@pytest.fixture(scope="session")
def minilm() -> YoutuEmbedder:
    return YoutuEmbedder(MINILM, device="cpu")


@pytest.fixture(scope="session")
def tiny_youtu(tiny_youtu_dir: str) -> YoutuEmbedder:
    return YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=2)


@contextlib.contextmanager
def running_chroma(
    path: Path, log: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real ``chroma run`` on a free port of 127.0.0.1, storing under ``path``: its process
    and URL once its heartbeat answers; stopped by its PID on the way out."""
    port = free_port()
    chroma = str(Path(sys.executable).with_name("chroma"))
    with contextlib.ExitStack() as files:
        sink = files.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        server = subprocess.Popen(
            [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = log.read_text() if log else ""
                    raise RuntimeError(f"chroma run did not come up: {output}") from None
                time.sleep(0.2)
        yield server, url
    finally:
        stop_process(server)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real ``chroma run`` server on 127.0.0.1, stopped by its PID at the end."""
    data = tmp_path_factory.mktemp("chroma_server")
    with running_chroma(data / "db", data / "server.log") as (_, url):
        yield url


@pytest.fixture(scope="session")
def minilm_instructed() -> YoutuEmbedder:
    """In process, what the ``youtu_server`` fixture serves."""
    return YoutuEmbedder(MINILM, device="cpu", query_instruction=QUERY_INSTRUCTION)


@pytest.fixture(scope="session")
def youtu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real ``youtu-rag serve`` (MiniLM with a query instruction) on 127.0.0.1."""
    with youtu_rag_serve(
        tmp_path_factory.mktemp("youtu_server"),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--query-instruction",
        QUERY_INSTRUCTION,
    ) as server:
        yield server.url
