"""``youtu-rag serve`` as a child process: started, awaited until ready, stopped by its PID.

For benchmarks and tests that need a real server on 127.0.0.1 beside the code measuring it.
"""

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
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_command() -> list[str]:
    """The ``youtu-rag`` script of this interpreter's environment, else ``python -m``."""
    script = Path(sys.executable).with_name("youtu-rag")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "youtu_rag"]


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_server(
    model: str,
    log_dir: Path,
    *options: str,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 300,
) -> Iterator[ServerProcess]:
    """``youtu-rag serve --model MODEL OPTIONS`` on a free port, yielded once ``/health`` is
    200; SIGTERM (then SIGKILL after 30 s) on the way out."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    command = [
        *serve_command(),
        "serve",
        "--model",
        model,
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
        try:
            wait_until_ready(f"{server.url}/health", process, ready_timeout_s)
        except RuntimeError as error:
            raise RuntimeError(
                f"youtu-rag serve did not come up ({error}):\n{server.log_text()}"
            ) from None
        yield server
    finally:
        stop_process(process, timeout_s=30)


def wait_until_ready(url: str, process: subprocess.Popen[Any], timeout_s: float) -> None:
    """Return once ``url`` answers 200 (a server's health route).

    Raises:
        RuntimeError: the process exited, or ``timeout_s`` passed, first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server of {url} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout_s:g} s")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``; nothing if it has."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
