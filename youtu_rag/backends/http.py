"""HttpEmbedder: a ``youtu-rag serve`` server where a :class:`YoutuEmbedder` would be.

Same ``encode_queries`` / ``encode_documents`` / ``encode``, same input checks and errors, same
float32 unit vectors: the server runs the very same core. The model stays in the server, so an
application (or every worker of one) embeds without loading it.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from youtu_rag.backends.addresses import parse_url
from youtu_rag.model.embedder import validate_texts

logger = logging.getLogger(__name__)

#: Where the API key is read from when none is passed: it is never stored in a collection.
API_KEY_ENV = "YOUTU_RAG_API_KEY"
_RETRY_STATUSES = (429, 503)


class EmbeddingServerError(RuntimeError):
    """The server refused or failed a request; ``status`` and ``code`` say how."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"embedding server answered {status} ({code}): {message}")
        self.status = status
        self.code = code


class HttpEmbedder:
    """Client of the server's ``/v1/embeddings``, shaped like :class:`YoutuEmbedder`.

    ``model`` (optional) is checked against what the server serves. ``batch_size`` is texts per
    HTTP request; the server batches across requests on its own. A busy (429) or starting (503)
    server is retried ``retries`` times with growing pauses.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        batch_size: int = 256,
        timeout: float = 120.0,
        retries: int = 3,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        # Parsed strictly: what a destination check reads is where httpx connects.
        parse_url(base_url)
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.batch_size = batch_size
        self.retries = retries
        key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=2),
        )
        served = self._request("GET", "/v1/models")["data"][0]
        self._model_name: str = served["id"]
        if model is not None and model != self._model_name:
            raise ValueError(
                f"{self.base_url} serves {self._model_name!r}, not {model!r}; "
                "leave the model out to use whatever it serves"
            )
        self.dimension: int = int(served["dimension"])
        self.max_length: int = int(served["max_length"])
        self.query_prefix: str = served["query_prefix"]
        self.document_prefix: str = served["document_prefix"]

    @property
    def model_name(self) -> str:
        return self._model_name

    def __repr__(self) -> str:
        return (
            f"HttpEmbedder({self.base_url!r}, model={self._model_name!r}, "
            f"dimension={self.dimension})"
        )

    def close(self) -> None:
        self._client.close()

    def encode_queries(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed search queries with the server's query instruction."""
        return self._embed(validate_texts(texts), "query")

    def encode_documents(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed documents with the server's document instruction (none by default)."""
        return self._embed(validate_texts(texts), "document")

    def encode(self, texts: str | Sequence[str], prefix: str = "") -> np.ndarray:
        """As :meth:`YoutuEmbedder.encode`, for the two prefixes the server knows: its query
        and its document prefix. The server embeds with no other instruction."""
        if prefix == self.document_prefix:
            return self.encode_documents(texts)
        if prefix == self.query_prefix:
            return self.encode_queries(texts)
        raise ValueError(
            f"the server at {self.base_url} embeds with its query prefix "
            f"{self.query_prefix!r} or its document prefix {self.document_prefix!r}, "
            f"not {prefix!r}; start it with --query-instruction / --document-instruction"
        )

    def _embed(self, texts: list[str], input_type: str) -> np.ndarray:
        output = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            body = self._request(
                "POST",
                "/v1/embeddings",
                json={
                    "input": chunk,
                    "model": self._model_name,
                    "input_type": input_type,
                    "encoding_format": "base64",
                },
            )
            returned = sorted(int(item["index"]) for item in body["data"])
            if returned != list(range(len(chunk))):
                raise EmbeddingServerError(200, None, f"{len(chunk)} texts sent, {returned} back")
            for item in body["data"]:
                vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
                if vector.shape != (self.dimension,) or not np.isfinite(vector).all():
                    raise EmbeddingServerError(
                        200, None, "a vector of the wrong size or not finite"
                    )
                output[start + int(item["index"])] = vector
        return output

    def _request(self, method: str, path: str, **options: Any) -> Any:
        for attempt in range(self.retries + 1):
            response = self._client.request(method, path, **options)
            if response.status_code not in _RETRY_STATUSES or attempt == self.retries:
                break
            pause = 0.5 * 2**attempt
            logger.info("server answered %d; retrying in %.1f s", response.status_code, pause)
            time.sleep(pause)
        if response.status_code != 200:
            error = _error_of(response)
            raise EmbeddingServerError(response.status_code, error.get("code"), error["message"])
        return response.json()


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json()["error"]
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error
    except (ValueError, KeyError, TypeError):
        pass
    return {"message": response.text[:200] or response.reason_phrase, "code": None}
