"""No client can stall `youtu-rag serve` for the others, or keep it from stopping: over-long
texts are refused by a character check before any tokenizing, large requests are counted in
slices that others' slices interleave with, a stalled upload gets 408, a head that never ends is
closed, and SIGTERM with a stalled client exits within the grace period without a traceback."""

from __future__ import annotations

import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server_process import ServerProcess, youtu_rag_serve
from youtu_rag.serve.app import CHARS_PER_TOKEN, GRACE_PERIOD_S, HEADER_TIMEOUT_S

MINILM_MAX_LENGTH = 256
#: 160 texts of 100,000 characters (one Chinese): a 16 MB request, as in the issue.
HUGE = orjson.dumps({"input": ["池化" * 50_000] + ["pooling " * 12_500] * 159})
#: Just under the character check, so they are tokenized: 160 x 8,000 characters.
LONG = orjson.dumps({"input": [("mean pooling " * 700)[:8000] for _ in range(160)]})


@pytest.fixture
def one_thread_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with youtu_rag_serve(tmp_path, "--threads", "1", "--body-timeout", "3") as server:
        yield server


def post(url: str, body: bytes, timeout: float = 300) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/embeddings",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def test_large_requests_do_not_hold_a_small_one(one_thread_server: ServerProcess) -> None:
    url = one_thread_server.url
    assert len(HUGE) > 16_000_000
    assert len(HUGE.decode()) // 160 > MINILM_MAX_LENGTH * CHARS_PER_TOKEN
    answers: list[httpx.Response] = []
    finished: list[float] = []

    def send(body: bytes) -> None:
        answers.append(post(url, body))
        finished.append(time.monotonic())

    senders = [threading.Thread(target=send, args=(body,)) for body in (HUGE,) * 4 + (LONG,) * 2]
    for sender in senders:
        sender.start()
    probes = []
    answered = []
    for number in range(20):
        started = time.monotonic()
        probe = post(url, orjson.dumps({"input": "池化" if number % 2 else "pooling"}))
        answered.append(time.monotonic())
        probes.append(answered[-1] - started)
        assert probe.status_code == 200, probe.text
        assert len(probe.json()["data"][0]["embedding"]) == 384
    for sender in senders:
        sender.join(timeout=300)
    # Each large one is refused (the huge ones before tokenizing), none with a timeout.
    assert sorted(answer.status_code for answer in answers) == [400] * 6
    assert all(answer.json()["error"]["code"] == "context_length_exceeded" for answer in answers)
    assert sum("characters, more than" in answer.text for answer in answers) == 4
    p95 = statistics.quantiles(probes, n=20)[-1]
    print(f"probe latency p50 {statistics.median(probes):.3f} s, p95 {p95:.3f} s")


def test_a_stalled_upload_gets_408_and_sigterm_still_exits(
    one_thread_server: ServerProcess,
) -> None:
    port = int(one_thread_server.url.rsplit(":", 1)[1])
    head = (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as timed_out:
        timed_out.sendall(head + b'{"input": "po')
        timed_out.settimeout(60)
        assert b"408" in timed_out.recv(65536).split(b"\r\n")[0]

    with socket.create_connection(("127.0.0.1", port)) as slow_head:
        slow_head.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        slow_head.settimeout(HEADER_TIMEOUT_S + 30)
        assert slow_head.recv(65536) == b""  # closed after the header timeout, unanswered

    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(head + b'{"input": "poo')
    trickling = socket.create_connection(("127.0.0.1", port))
    trickling.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end of head
    time.sleep(0.5)
    process = one_thread_server.process
    stopped = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=GRACE_PERIOD_S + 20)  # raises if it is still running
    exit_time = time.monotonic() - stopped
    stalled.settimeout(5)
    assert b"503" in stalled.recv(65536).split(b"\r\n")[0]
    stalled.close()
    trickling.close()
    log = one_thread_server.log_text()
    assert "Traceback" not in log, log
    # uvicorn re-raises the signal once it has shut down cleanly, as a shell expects.
    assert process.returncode in (0, -signal.SIGTERM), log
    assert "Application shutdown complete." in log
    print(f"SIGTERM with a stalled client: exited after {exit_time:.2f} s")
