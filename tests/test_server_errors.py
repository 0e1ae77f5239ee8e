"""Every refusal of `youtu-rag serve` has its status and OpenAI's error shape; a stop signal
finishes the queued work. One real server with small limits and an API key; its batches never
fill by waiting (``--max-wait-ms`` of ten minutes), so a request of fewer texts than a batch
stays queued until it times out, the queue is full, or the server drains."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server_process import ServerProcess, youtu_rag_serve
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.backends.http import API_KEY_ENV, EmbeddingServerError, HttpEmbedder

KEY = "sk-test-7d1f0c9e2b"
AUTH = {"Authorization": f"Bearer {KEY}"}
BATCH = 4  # texts per forward pass; a request of exactly BATCH texts runs at once
TIMEOUT_S = 3
FOUR = ["one cat", "two dogs", "three birds", "four fish"]


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with youtu_rag_serve(
        tmp_path_factory.mktemp("strict_server"),
        "--threads",
        "1",
        "--batch-size",
        str(BATCH),
        "--max-wait-ms",
        "600000",
        "--request-timeout",
        str(TIMEOUT_S),
        "--max-queued-texts",
        "6",
        "--max-texts-per-request",
        "5",
        "--max-text-chars",
        "200",
        "--max-body-bytes",
        "4096",
        "--max-length",
        "32",
        "--api-key-env",
        "YOUTU_TEST_KEY",
        env={"YOUTU_TEST_KEY": f"{KEY}\n"},  # as `export K=$(cat key)` leaves it: stripped
    ) as server:
        yield server


def post(server: ServerProcess, body: Any = None, **options: Any) -> httpx.Response:
    options.setdefault("headers", AUTH)
    if body is not None:
        options["json"] = body
    return httpx.post(f"{server.url}/v1/embeddings", timeout=60, **options)


def assert_error(response: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert fragment in error["message"]
    assert error["type"] in (
        "invalid_request_error",
        "authentication_error",
        "rate_limit_error",
        "server_error",
    )


def test_a_missing_or_wrong_key_gets_401(
    strict_server: ServerProcess, minilm: YoutuEmbedder
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
        assert_error(post(strict_server, {"input": FOUR}, headers=headers), 401, "invalid_api_key")
        assert_error(
            httpx.get(f"{strict_server.url}/v1/models", headers=headers), 401, "invalid_api_key"
        )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{strict_server.url}/v1", api_key="wrong").embeddings.create(
            model=MINILM, input=FOUR
        )

    answer = post(strict_server, {"input": FOUR})
    assert answer.status_code == 200, answer.text
    vectors = np.asarray([item["embedding"] for item in answer.json()["data"]])
    assert np.abs(vectors - minilm.encode_documents(FOUR)).max() <= 1e-6
    # Probes and scrapers need no key.
    assert httpx.get(f"{strict_server.url}/health").status_code == 200
    assert httpx.get(f"{strict_server.url}/metrics").status_code == 200
    assert KEY not in strict_server.log_text()


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"input": [101, 2023]}, "token_input_unsupported", "token arrays"),
        ({"input": [[101], [2023, 102]]}, "token_input_unsupported", "token arrays"),
        ({"input": "x", "dimensions": 128}, "unsupported_parameter", "dimensions"),
        ({"input": "x", "model": "text-embedding-3-small"}, "model_not_found", MINILM),
        (
            {"input": "x", "model": f"{MINILM}:query", "input_type": "document"},
            "conflicting_input_type",
            "contradicts",
        ),
        ({"input": []}, "empty_input", "empty"),
        ({"input": ["fine", "   "]}, "invalid_text", "index 1"),
        ({"input": ["short", "word " * 39]}, "context_length_exceeded", "index 1"),
    ],
)
def test_refused_requests_get_400(
    strict_server: ServerProcess, body: dict[str, Any], code: str, fragment: str
) -> None:
    assert_error(post(strict_server, body), 400, code, fragment)


def test_a_body_that_is_not_json_gets_400(strict_server: ServerProcess) -> None:
    assert_error(post(strict_server, content=b'{"input": '), 400, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x"},  # no input, and a field OpenAI does not have
        {"input": 5},
        {"input": ["a", 1]},
        {"input": "x", "encoding_format": "int8"},
        {"input": "x", "input_type": "passage"},
        ["x"],
    ],
)
def test_bodies_of_the_wrong_shape_get_422(strict_server: ServerProcess, body: Any) -> None:
    assert_error(post(strict_server, body), 422, "invalid_request_body")


def test_too_large_gets_413(strict_server: ServerProcess) -> None:
    assert_error(post(strict_server, {"input": ["x"] * 6}), 413, "too_many_texts", "at most 5")
    assert_error(post(strict_server, {"input": ["x", "y" * 201]}), 413, "text_too_long", "index 1")
    big = b'{"input": "' + b"a" * 5000 + b'"}'
    assert_error(post(strict_server, content=big), 413, "request_too_large", "4096")
    # Without a Content-Length (chunked), the limit holds while reading.
    chunks = iter([b'{"input": "', b"a" * 3000, b"a" * 3000, b'"}'])
    assert_error(post(strict_server, content=chunks), 413, "request_too_large", "4096")


def test_unknown_routes_and_methods_answer_in_the_same_shape(strict_server: ServerProcess) -> None:
    assert_error(httpx.get(f"{strict_server.url}/v1/nothing"), 404, "not_found")
    assert_error(httpx.get(f"{strict_server.url}/v1/embeddings"), 405, "method_not_allowed")


def queued_texts(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "youtu_rag_queued_texts":
            return float(family.samples[0].value)
    raise AssertionError("no youtu_rag_queued_texts")


def wait_until_queued(server: ServerProcess, count: int) -> None:
    for _ in range(600):
        if queued_texts(server) == count:
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"never saw {count} queued texts")


def test_a_full_queue_gets_429_and_a_stuck_request_503(strict_server: ServerProcess) -> None:
    answers: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: answers.append(post(strict_server, {"input": FOUR[:3]}))
    )
    waiting.start()
    wait_until_queued(strict_server, 3)  # three texts, a batch needs four: they wait
    assert_error(post(strict_server, {"input": FOUR}), 429, "queue_full")
    waiting.join(timeout=60)
    assert_error(answers[0], 503, "timeout", f"{TIMEOUT_S} s")
    assert queued_texts(strict_server) == 0  # the timed-out texts left the queue


def test_http_embedder_sends_the_key(
    strict_server: ServerProcess, minilm: YoutuEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(EmbeddingServerError, match="401") as refused:
        HttpEmbedder(strict_server.url)
    assert refused.value.code == "invalid_api_key"
    given = HttpEmbedder(strict_server.url, api_key=KEY)
    monkeypatch.setenv(API_KEY_ENV, f" {KEY}\n")  # read from the environment, stripped
    from_environment = HttpEmbedder(strict_server.url)
    for embedder in (given, from_environment):
        vectors = embedder.encode_documents(FOUR)
        assert np.abs(vectors - minilm.encode_documents(FOUR)).max() <= 1e-6


def test_a_stop_signal_finishes_the_queued_work(
    strict_server: ServerProcess, minilm: YoutuEmbedder
) -> None:
    """Last in this module: it stops the server."""
    texts = ["first queued text", "second queued text", "third queued text"]
    answers: dict[int, httpx.Response] = {}

    def send(index: int) -> None:
        answers[index] = post(strict_server, {"input": texts[index]})

    senders = [threading.Thread(target=send, args=(index,)) for index in range(3)]
    for sender in senders:
        sender.start()
    wait_until_queued(strict_server, 3)  # a batch of four would wait ten minutes for the fourth
    strict_server.process.send_signal(signal.SIGTERM)
    for sender in senders:
        sender.join(timeout=60)
    strict_server.process.wait(timeout=60)

    expected = minilm.encode_documents(texts)
    for index in range(3):
        assert answers[index].status_code == 200, answers[index].text
        vector = np.asarray(answers[index].json()["data"][0]["embedding"])
        assert np.abs(vector - expected[index]).max() <= 1e-6
    assert "draining: 3 queued texts left to embed" in strict_server.log_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{strict_server.url}/health")
