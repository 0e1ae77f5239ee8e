"""STAND-IN for Tencent Cloud's LKEAP ``GetEmbedding`` and ``RunRerank`` endpoint: the one service
youtu-rag talks to that cannot be reached from here. Everything else in the tests is the real
thing, and the real SDK talks to this server over http, exactly as it talks to
lkeap.tencentcloudapi.com.

What it checks, as the service does: the TC3-HMAC-SHA256 signature (with the test key below),
the action and version headers, the documented limits (at most 7 inputs of at most 2000
characters, a documented model, ``TextType`` query or document; for ``RunRerank`` at most 60
``Docs`` and at most 2000 characters of ``Query`` and ``Docs`` together, model
``lke-reranker-base``). It answers in the API 3.0 shape (HTTP 200 with ``Response.Data`` or
``ScoreList`` / ``Usage`` / ``RequestId``, or ``Response.Error``); a rerank score is the share of
the query's words a document holds, so the ranking is checkable.

What it cannot be: the real model. Its vectors are deterministic stand-ins, a hashed bag of words
(so search finds the passage sharing a query's words) plus a component seeded by the model,
``TextType`` and the instruction the service would honour (so those visibly change the vector).

Run ``python -m tests.tencent_cloud_standin``: it binds 127.0.0.1 on a free port and prints
``listening on PORT``. ``POST /_standin/control`` (JSON ``{"fail": [...], "delay": s}``) queues
answers to give instead of the next embeddings (an error code, or an HTTP status such as 503)
and sets a delay per call; ``GET /_standin/log`` returns the calls that passed the checks, how
many requests arrived (``received``, refused ones included) and the most in flight at once;
``POST /_standin/reset`` clears all of it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import random
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_ID = "AKIDstandin0000000000000000000000"
SECRET_KEY = "standin-secret-key-c0ffee-3b9d7f2a"
SERVICE = "lkeap"
ACTION = "GetEmbedding"
RERANK_ACTION = "RunRerank"
RERANK_MODELS = ("lke-reranker-base",)
MAX_DOCS = 60
VERSION = "2024-05-22"
MODELS = ("lke-text-embedding-v1", "lke-text-embedding-v2")
#: The only model that honours ``Instruction`` (with ``TextType=query``), per the documentation.
INSTRUCTION_MODELS = ("lke-text-embedding-v1",)
MAX_INPUTS = 7
MAX_CHARACTERS = 2000
DIMENSION = 64
MAX_CLOCK_SKEW = 300  # seconds, as the service allows

_AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)
_WORD = re.compile(r"\w+")


def vector(model: str, text_type: str, instruction: str, text: str) -> list[float]:
    """The unit vector this stand-in returns for one input."""
    values = [0.0] * DIMENSION
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        values[int.from_bytes(digest[:4], "little") % DIMENSION] += 1.0 if digest[4] & 1 else -1.0
    honoured = instruction if text_type == "query" and model in INSTRUCTION_MODELS else ""
    seed = hashlib.sha256(f"{model}\n{text_type}\n{honoured}".encode()).digest()
    context = random.Random(seed).gauss
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    values = [value / norm + 0.25 * context(0.0, 1.0) / math.sqrt(DIMENSION) for value in values]
    norm = math.sqrt(sum(value * value for value in values))
    return [value / norm for value in values]


def tc3_signature(secret_key: str, date: str, string_to_sign: str) -> str:
    """TC3-HMAC-SHA256 as Tencent Cloud documents it (signature v3)."""

    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

    secret_date = sign(("TC3" + secret_key).encode("utf-8"), date)
    secret_signing = sign(sign(secret_date, SERVICE), "tc3_request")
    return hmac.new(secret_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.fail: list[str | int] = []
        self.delay = 0.0
        self.calls: list[dict[str, Any]] = []
        self.received = 0
        self.in_flight = 0
        self.max_in_flight = 0


STATE = _State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: dict[str, Any]) -> None:
        self._send(200, json.dumps(payload).encode("utf-8"))

    def do_GET(self) -> None:
        if self.path != "/_standin/log":
            self._send(404, b"not found", "text/plain")
            return
        with STATE.lock:
            self._json(
                {
                    "calls": STATE.calls,
                    "received": STATE.received,
                    "max_in_flight": STATE.max_in_flight,
                }
            )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_standin/control":
            control = json.loads(body)
            with STATE.lock:
                STATE.fail.extend(control.get("fail", []))
                STATE.delay = float(control.get("delay", STATE.delay))
            self._json({})
        elif self.path == "/_standin/reset":
            with STATE.lock:
                STATE.reset()
            self._json({})
        elif self.path == "/":
            self._get_embedding(body)
        else:
            self._send(404, b"not found", "text/plain")

    def _get_embedding(self, body: bytes) -> None:
        request_id = str(uuid.uuid4())
        with STATE.lock:
            STATE.received += 1
            STATE.in_flight += 1
            STATE.max_in_flight = max(STATE.max_in_flight, STATE.in_flight)
            delay = STATE.delay
        try:
            time.sleep(delay)
            try:
                self._verify_signature(body)
                params = self._verify_request(body)
            except _Refusal as refusal:
                self._json(
                    {
                        "Response": {
                            "Error": {"Code": refusal.code, "Message": refusal.message},
                            "RequestId": request_id,
                        }
                    }
                )
                return
            with STATE.lock:
                STATE.calls.append(params)
                injected = STATE.fail.pop(0) if STATE.fail else None
            if isinstance(injected, int):
                self._send(injected, b"service unavailable", "text/plain")
                return
            if injected is not None:
                error = {"Code": injected, "Message": f"stand-in answers {injected}"}
                self._json({"Response": {"Error": error, "RequestId": request_id}})
                return
            if params["Action"] == RERANK_ACTION:
                query_words = set(_WORD.findall(params["Query"].lower()))
                scores = [
                    len(query_words & set(_WORD.findall(doc.lower()))) / max(len(query_words), 1)
                    for doc in params["Docs"]
                ]
                tokens = sum(len(_WORD.findall(t)) for t in [params["Query"], *params["Docs"]])
                self._json(
                    {
                        "Response": {
                            "ScoreList": scores,
                            "Usage": {"TotalTokens": tokens},
                            "RequestId": request_id,
                        }
                    }
                )
                return
            model, text_type = params["Model"], params.get("TextType") or "document"
            instruction = params.get("Instruction") or ""
            data = [
                {"Embedding": vector(model, text_type, instruction, text)}
                for text in params["Inputs"]
            ]
            tokens = sum(len(_WORD.findall(text)) for text in params["Inputs"])
            self._json(
                {
                    "Response": {
                        "Data": data,
                        "Usage": {"TotalTokens": tokens},
                        "RequestId": request_id,
                    }
                }
            )
        finally:
            with STATE.lock:
                STATE.in_flight -= 1

    def _verify_signature(self, body: bytes) -> None:
        match = _AUTHORIZATION.fullmatch(self.headers.get("Authorization", ""))
        if match is None:
            raise _Refusal("AuthFailure.InvalidAuthorization", "Authorization is malformed")
        if match["id"] != SECRET_ID:
            raise _Refusal("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        timestamp = int(self.headers.get("X-TC-Timestamp", "0"))
        if abs(time.time() - timestamp) > MAX_CLOCK_SKEW:
            raise _Refusal("AuthFailure.SignatureExpire", "The signature expired")
        date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
        if match["date"] != date or match["service"] != SERVICE:
            raise _Refusal("AuthFailure.InvalidAuthorization", "Credential scope is wrong")
        signed = match["signed"].split(";")
        if not {"content-type", "host"} <= set(signed):
            raise _Refusal("AuthFailure.InvalidAuthorization", "content-type and host unsigned")
        canonical_headers = "".join(
            f"{name}:{(self.headers.get(name) or '').strip().lower()}\n" for name in signed
        )
        canonical_request = "\n".join(
            [
                self.command,
                "/",
                "",  # query string: empty for POST
                canonical_headers,
                match["signed"],
                hashlib.sha256(body).hexdigest(),
            ]
        )
        string_to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                str(timestamp),
                f"{date}/{SERVICE}/tc3_request",
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ]
        )
        expected = tc3_signature(SECRET_KEY, date, string_to_sign)
        if not hmac.compare_digest(expected, match["signature"]):
            raise _Refusal("AuthFailure.SignatureFailure", "The provided credentials are wrong")

    def _verify_request(self, body: bytes) -> dict[str, Any]:
        action = self.headers.get("X-TC-Action")
        if action not in (ACTION, RERANK_ACTION):
            raise _Refusal("InvalidAction", "Only GetEmbedding and RunRerank are served here")
        if self.headers.get("X-TC-Version") != VERSION:
            raise _Refusal("InvalidParameter", f"X-TC-Version must be {VERSION}")
        if not self.headers.get("X-TC-Region"):
            raise _Refusal("MissingParameter", "X-TC-Region is required")
        if self.headers.get("Content-Type") != "application/json":
            raise _Refusal("InvalidParameter", "Content-Type must be application/json")
        params = json.loads(body)
        if not isinstance(params, dict):
            raise _Refusal("InvalidParameter", "The body must be a JSON object")
        if action == RERANK_ACTION:
            return {**self._verify_rerank(params), "Region": self.headers["X-TC-Region"]}
        if params.get("Model") not in MODELS:
            raise _Refusal("InvalidParameterValue", f"Model must be one of {', '.join(MODELS)}")
        inputs = params.get("Inputs")
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(i, str) for i in inputs)
        ):
            raise _Refusal("InvalidParameterValue", "Inputs must be a non-empty list of strings")
        if len(inputs) > MAX_INPUTS:
            raise _Refusal("InvalidParameterValue", f"At most {MAX_INPUTS} Inputs per call")
        if any(len(text) > MAX_CHARACTERS for text in inputs):
            raise _Refusal("InvalidParameterValue", f"An input exceeds {MAX_CHARACTERS} characters")
        if params.get("TextType") not in (None, "query", "document"):
            raise _Refusal("InvalidParameterValue", "TextType must be query or document")
        if not isinstance(params.get("Instruction", ""), str):
            raise _Refusal("InvalidParameterValue", "Instruction must be a string")
        return {**params, "Action": ACTION, "Region": self.headers["X-TC-Region"]}

    def _verify_rerank(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Model", RERANK_MODELS[0]) not in RERANK_MODELS:
            raise _Refusal("InvalidParameterValue", f"Model must be {RERANK_MODELS[0]}")
        query, docs = params.get("Query"), params.get("Docs")
        if not isinstance(query, str) or not query:
            raise _Refusal("InvalidParameterValue", "Query must be a non-empty string")
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            raise _Refusal("InvalidParameterValue", "Docs must be a non-empty list of strings")
        if len(docs) > MAX_DOCS:
            raise _Refusal("InvalidParameterValue", f"At most {MAX_DOCS} Docs per call")
        if len(query) + sum(len(doc) for doc in docs) > MAX_CHARACTERS:
            raise _Refusal(
                "InvalidParameterValue", f"Query and Docs exceed {MAX_CHARACTERS} characters"
            )
        return {**params, "Action": RERANK_ACTION}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
