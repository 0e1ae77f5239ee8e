"""A stand-in for text-embeddings-inference's OpenAI route, on 127.0.0.1.

What the client meets at a real TEI: ``POST /v1/embeddings`` only (no ``/v1/models``: 404),
``input`` a string or a list, ``encoding_format`` float or base64, unknown fields ignored, a
batch over ``max_client_batch_size`` refused with TEI's error shape (``{"error", "error_type"}``,
413), the prefixes the caller sends embedded as text, and an optional bearer key. The vectors
are a real model's (the core, with no instruction), scaled so a client must normalise them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from youtu_rag import YoutuEmbedder


@dataclass
class TeiStandin:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def tei_standin(
    embedder: YoutuEmbedder, *, max_batch: int = 32, api_key: str | None = None
) -> Iterator[TeiStandin]:
    """The stand-in serving ``embedder`` (its vectors times 3), until the block ends."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(404, {"error": "Not Found", "error_type": "NotFound"})

        def do_POST(self) -> None:
            if self.path != "/v1/embeddings":
                self._answer(404, {"error": "Not Found", "error_type": "NotFound"})
                return
            if api_key is not None and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._answer(401, {"error": "Unauthorized", "error_type": "Unauthorized"})
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
            if len(texts) > max_batch:
                message = f"batch size {len(texts)} > maximum allowed batch size {max_batch}"
                self._answer(413, {"error": message, "error_type": "Validation"})
                return
            vectors = 3 * embedder.encode(texts, prefix="")
            as_base64 = body.get("encoding_format") == "base64"
            data = [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode()
                    if as_base64
                    else [float(value) for value in np.asarray(vector)],
                }
                for index, vector in enumerate(vectors)
            ]
            self._answer(200, {"object": "list", "data": data, "model": "tei", "usage": {}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TeiStandin(f"http://127.0.0.1:{server.server_address[1]}/v1", seen)
    finally:
        server.shutdown()
        server.server_close()
