"""Start ``youtu-rag serve`` as a real process on 127.0.0.1 and stop it by its PID."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from youtu_rag import MINILM

#: The served MiniLM gets a query instruction, so queries and documents differ and a test can
#: tell which one it got.
QUERY_INSTRUCTION = "Given a question, retrieve passages that answer it"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def youtu_rag_serve(
    log_dir: Path, *options: str, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A ``youtu-rag serve --model MiniLM`` process, yielded once ``/health`` says ready."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    command = [
        str(Path(sys.executable).with_name("youtu-rag")),
        "serve",
        "--model",
        MINILM,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"youtu-rag serve did not come up:\n{server.log_text()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
