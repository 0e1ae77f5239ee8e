"""``youtu-rag serve``: one loaded model behind the OpenAI ``/v1/embeddings`` API.

Anything that speaks OpenAI embeddings (the ``openai`` SDK, LangChain's ``OpenAIEmbeddings``,
LlamaIndex's ``OpenAIEmbedding``, Chroma's OpenAI function, curl) can use the model; so can the
adapters here, through :class:`~youtu_rag.backends.http.HttpEmbedder`. Texts of all clients are
batched together (:mod:`youtu_rag.serve.batching`) and embedded by the same
:class:`YoutuEmbedder` as in process, so the vectors are the ones a local embedder returns.

Queries and documents differ (the query instruction): a request says which with ``input_type``
(``"query"`` or ``"document"``), or through the model aliases ``<model>:query`` and
``<model>:document`` for clients that cannot add a field; a request that says neither gets the
server's default input type (``document`` unless started with ``--default-input-type query``, for
a client such as Chroma's ``OpenAIEmbeddingFunction`` that only ever sends queries to it).

Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``. The server starts
listening at once and loads the model in the background: ``/health`` answers 503 until it is
loaded. On SIGTERM or Ctrl-C it stops accepting connections, embeds what is queued without
waiting for batches to fill, answers, and exits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson
import uvicorn
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from youtu_rag.backends.protocol import TextReranker
from youtu_rag.index.fingerprint import recorded_pooling
from youtu_rag.model.resolution import ModelNotFoundError
from youtu_rag.model.texts import validate_texts
from youtu_rag.serve.batching import Batcher, Job, QueueFullError, ShuttingDownError
from youtu_rag.serve.metrics import ServerMetrics
from youtu_rag.serve.reranking import parse_request, rerank_answer
from youtu_rag.serve.sockets import listen

if TYPE_CHECKING:
    # The model's modules import torch: the server answers /health before they load.
    from youtu_rag.model.embedder import TokenCounts, YoutuEmbedder

logger = logging.getLogger(__name__)

InputType = Literal["query", "document"]

#: More characters than any token of a real tokenizer covers (BERT's WordPiece caps a word at
#: 100 characters and splits it into pieces; BPE tokens are a few bytes): a text longer than
#: ``max_length * CHARS_PER_TOKEN`` has more tokens than the model takes, so it is refused (or,
#: with auto-truncate, cut to that many characters) before anything tokenizes it.
CHARS_PER_TOKEN = 32
#: Texts and characters tokenized in one go on the counting thread: a large request is counted
#: in slices, and other requests' slices run in between, so none waits for a whole large one.
_COUNT_SLICE_TEXTS = 64
_COUNT_SLICE_CHARS = 1 << 18


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for, and how long and how much work the server takes on."""

    max_texts_per_request: int = 2048
    max_text_chars: int = 100_000
    max_body_bytes: int = 16 * 1024 * 1024
    request_timeout_s: float = 60.0
    max_queued_texts: int = 65_536
    #: Cut texts longer than the model's limit instead of refusing them (the core's default).
    auto_truncate: bool = False
    #: Seconds a client has to send its whole request body (a stalled upload is answered 408).
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_texts_per_request > self.max_queued_texts:
            raise ValueError(
                f"max_texts_per_request ({self.max_texts_per_request}) exceeds max_queued_texts "
                f"({self.max_queued_texts}): such a request could never be queued"
            )
        for name in ("max_texts_per_request", "max_text_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.request_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("request_timeout_s and body_timeout_s must be positive")


@dataclass(frozen=True)
class BatchingOptions:
    """How long a batch that is not full waits for more texts, and how many requests may
    share one forward pass (``None``: as many as fit; 1 gives one request per forward)."""

    max_wait_ms: float = 2.0
    max_requests_per_batch: int | None = None


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, code: str, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.kind = kind

    def response(self) -> Response:
        return json_response(
            {
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "param": None,
                    "code": self.code,
                }
            },
            self.status,
        )


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


class EmbeddingRequest(BaseModel):
    """OpenAI's request body, plus ``input_type``. Strict: nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    input_type: InputType | None = None
    user: str | None = None


class EmbeddingService:
    """The model, its queue and the request handlers of one server."""

    def __init__(
        self,
        load: Callable[[], YoutuEmbedder],
        *,
        limits: ServerLimits | None = None,
        batching: BatchingOptions | None = None,
        api_key: str | None = None,
        default_input_type: InputType = "document",
        load_reranker: Callable[[], TextReranker] | None = None,
    ) -> None:
        if api_key is not None and not api_key.strip():
            raise ValueError("the API key is empty")
        if default_input_type not in ("query", "document"):
            raise ValueError(
                f"default_input_type must be 'query' or 'document', got {default_input_type!r}"
            )
        #: What a request that names no input type (field or model alias) is embedded as.
        self.default_input_type: InputType = default_input_type
        self.load = load
        self.limits = limits or ServerLimits()
        self.batching = batching or BatchingOptions()
        self.metrics = ServerMetrics()
        self.created = int(time.time())
        #: Called (on the event loop) when the model cannot load; the server then exits.
        self.on_load_failure: Callable[[BaseException], None] | None = None
        self.load_error: BaseException | None = None
        self.embedder: YoutuEmbedder | None = None
        self.batcher: Batcher | None = None
        #: Loads the ``/v1/rerank`` cross-encoder (``serve --rerank``); None: no such route.
        self.load_reranker = load_reranker
        self.reranker: TextReranker | None = None
        # Stripped like the presented token: a key read from a file or the environment often ends
        # in a newline.
        self._api_key = None if api_key is None else api_key.strip().encode()
        self._counting_tokenizer: Any = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="youtu-rag-model")
        self._counting_thread = ThreadPoolExecutor(1, thread_name_prefix="youtu-rag-tokens")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._stopping = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Load in the background while already answering ``/health``; on the way out (after
        the last open request was answered) stop the worker."""
        self._loop = asyncio.get_running_loop()
        worker = asyncio.ensure_future(self._start())
        try:
            yield
        finally:
            self._drain()
            if self.batcher is None:  # still loading: nothing is queued, nothing to finish
                worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            self._model_thread.shutdown(wait=False, cancel_futures=True)
            self._counting_thread.shutdown(wait=False, cancel_futures=True)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.embedder = await loop.run_in_executor(self._model_thread, self._load_and_check)
            if self.load_reranker is not None:
                self.reranker = await loop.run_in_executor(self._model_thread, self.load_reranker)
        except Exception as error:
            logger.error("cannot load the model: %s", error)
            self.load_error = error
            if self.on_load_failure is not None:
                self.on_load_failure(error)
            return
        self._counting_tokenizer = copy.deepcopy(self.embedder.backbone.tokenizer)
        self.batcher = Batcher(
            self.embedder,
            self._model_thread,
            self.metrics,
            max_wait_s=self.batching.max_wait_ms / 1000,
            max_queued_texts=self.limits.max_queued_texts,
            max_requests_per_batch=self.batching.max_requests_per_batch,
        )
        if self._draining:
            self.batcher.drain()
        logger.info("ready: %r", self.embedder)
        await self.batcher.run()

    def _load_and_check(self) -> YoutuEmbedder:
        """The embedder, after one query and one document went through it: a prefix that
        leaves no room for text fails here, not on a client's first batch."""
        embedder = self.load()
        embedder.encode_queries(["ready"])
        embedder.encode_documents(["ready"])
        return embedder

    def begin_drain(self) -> None:
        """Safe from a signal handler: ask the event loop to drain."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._draining = True
        self._stopping.set()
        if self.batcher is not None:
            self.batcher.drain()

    # --- routes ----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """200 once loaded; 503 while loading, after a failed load and while shutting down, so
        a load balancer sends nothing to a server that cannot take it."""
        return json_response({"status": "ok", "model": self._ready_embedder().model_name})

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def models(self, request: Request) -> Response:
        self._authorize(request)
        embedder = self._ready_embedder()
        name = embedder.model_name
        base = {"object": "model", "created": self.created, "owned_by": "youtu-rag"}
        entries = [
            {
                **base,
                "id": name,
                "input_type": None,
                "default_input_type": self.default_input_type,
                "dimension": embedder.dimension,
                "max_length": embedder.max_length,
                "query_prefix": embedder.query_prefix,
                "document_prefix": embedder.document_prefix,
                # The collection fingerprint's terms: a client's vectors are this model's.
                "pooling": recorded_pooling(embedder),
                "backend": embedder.backend,
            },
            {**base, "id": f"{name}:query", "input_type": "query"},
            {**base, "id": f"{name}:document", "input_type": "document"},
        ]
        return json_response({"object": "list", "data": entries})

    async def rerank(self, request: Request) -> Response:
        """``POST /v1/rerank`` (see :mod:`youtu_rag.serve.reranking`)."""
        return await self._counted(self._rerank(request))

    async def _counted(self, handling: Awaitable[Response]) -> Response:
        """A request's answer, counted by status and timed in the metrics."""
        started = time.monotonic()
        status = 500
        try:
            response = await handling
            status = response.status_code
            return response
        except ApiError as error:
            status = error.status
            raise
        finally:
            self.metrics.requests.labels(str(status)).inc()
            self.metrics.latency.observe(time.monotonic() - started)

    async def _rerank(self, request: Request) -> Response:
        self._authorize(request)
        if self.load_reranker is None:
            raise ApiError(
                404, "this server has no reranker: start it with --rerank MODEL", "no_reranker"
            )
        self._ready_embedder()
        reranker = self.reranker
        assert reranker is not None
        body = await self._read_body(request)
        parsed = await asyncio.to_thread(parse_request, body)
        if isinstance(parsed, ValidationError):
            raise _validation_error(parsed)
        texts = parsed.texts()
        if len(texts) > self.limits.max_texts_per_request:
            raise ApiError(
                400,
                f"{len(texts)} documents; at most {self.limits.max_texts_per_request} a request",
                "too_many_inputs",
            )
        for index, text in enumerate([parsed.query, *texts]):
            where = "the query" if index == 0 else f"document at index {index - 1}"
            if not text.strip():
                raise ApiError(400, f"{where} is empty or whitespace only", "empty_input")
            if len(text) > self.limits.max_text_chars:
                raise ApiError(
                    400,
                    f"{where} has {len(text)} characters, at most {self.limits.max_text_chars}",
                    "text_too_long",
                )
        answer = await asyncio.wait_for(
            rerank_answer(
                reranker,
                parsed,
                self._model_thread,
                max(1, int(getattr(reranker, "batch_size", 32))),
                _token_counter(reranker),
            ),
            self.limits.request_timeout_s,
        )
        return json_response(answer)

    async def embeddings(self, request: Request) -> Response:
        return await self._counted(self._embeddings(request, time.monotonic()))

    async def _embeddings(self, request: Request, started: float) -> Response:
        self._authorize(request)
        embedder = self._ready_embedder()
        assert self.batcher is not None
        body = await self._read_body(request)
        try:
            # Off the event loop: a 16 MB body takes a while to parse.
            parsed = await asyncio.to_thread(EmbeddingRequest.model_validate_json, body)
        except ValidationError as error:
            raise _validation_error(error) from None
        del body
        input_type = self._input_type(parsed, embedder.model_name)
        texts = self._within_model_length(self._texts(parsed), embedder.max_length)
        prefix = embedder.query_prefix if input_type == "query" else embedder.document_prefix
        counts = await self._count(texts, prefix, embedder.max_length)
        if counts.truncated and not self.limits.auto_truncate:
            raise ApiError(
                400,
                f"text at index {counts.truncated[0]} is longer than the model's "
                f"{embedder.max_length} tokens (instruction included); split it, or start the "
                "server with --auto-truncate to cut it",
                "context_length_exceeded",
            )
        try:
            job = self.batcher.submit(texts, counts.lengths, prefix, input_type)
        except QueueFullError as error:
            raise ApiError(429, str(error), "queue_full", "rate_limit_error") from None
        except ShuttingDownError as error:
            raise ApiError(503, str(error), "shutting_down", "server_error") from None
        vectors = await self._wait(job, started)
        tokens = sum(counts.lengths)
        self.metrics.texts.labels(input_type).inc(len(texts))
        self.metrics.tokens.labels(input_type).inc(tokens)
        return json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": index, "embedding": embedding}
                    for index, embedding in enumerate(_encode_vectors(vectors, parsed))
                ],
                "model": parsed.model or embedder.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _count(self, texts: list[str], prefix: str, max_length: int) -> TokenCounts:
        """Token counts, computed on the counting thread one slice at a time: a slice of every
        request in flight runs in turn, so a small request waits for a few slices, never for a
        whole large request."""
        from youtu_rag.model.embedder import TokenCounts, count_tokens  # loaded by now

        loop = asyncio.get_running_loop()
        lengths: list[int] = []
        truncated: list[int] = []
        for start, stop in _slices(texts):
            part = await loop.run_in_executor(
                self._counting_thread,
                count_tokens,
                self._counting_tokenizer,
                texts[start:stop],
                prefix,
                max_length,
            )
            lengths.extend(part.lengths)
            truncated.extend(start + index for index in part.truncated)
        return TokenCounts(lengths=lengths, truncated=truncated)

    def _within_model_length(self, texts: list[str], max_length: int) -> list[str]:
        """The cheap check before any tokenizing: a text of more than ``max_length *``
        :data:`CHARS_PER_TOKEN` characters cannot fit the model; refuse it, or with
        auto-truncate cut it to that many characters (the tokenizer then cuts it at the
        model's limit as before)."""
        most = max_length * CHARS_PER_TOKEN
        for index, text in enumerate(texts):
            if len(text) > most and not self.limits.auto_truncate:
                raise ApiError(
                    400,
                    f"text at index {index} has {len(text)} characters, more than the model's "
                    f"{max_length} tokens can hold; split it, or start the server with "
                    "--auto-truncate to cut it",
                    "context_length_exceeded",
                )
        return [text[:most] for text in texts]

    # --- request checks --------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        """Bearer-token check in constant time; the token is never logged."""
        if self._api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._api_key
        ):
            raise ApiError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                "invalid_api_key",
                "authentication_error",
            )

    def _not_ready(self) -> ApiError:
        if self.load_error is not None:
            return ApiError(
                503,
                f"the model failed to load: {self.load_error}",
                "model_load_failed",
                "server_error",
            )
        if self._draining:
            return ApiError(503, "the server is shutting down", "shutting_down", "server_error")
        return ApiError(503, "the model is still loading", "model_loading", "server_error")

    def _ready_embedder(self) -> YoutuEmbedder:
        if self.embedder is None or self.batcher is None or self._draining:
            raise self._not_ready()
        return self.embedder

    async def _read_body(self, request: Request) -> bytes:
        """The body, within its size limit and :attr:`ServerLimits.body_timeout_s`; a stop
        signal ends the wait at once (503), so a stalled upload never holds the shutdown."""
        limit = self.limits.max_body_bytes
        too_large = ApiError(413, f"the request body exceeds {limit} bytes", "request_too_large")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    raise too_large

        reading = asyncio.ensure_future(read())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                (reading, stopping),
                timeout=self.limits.body_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopping.cancel()
            if not reading.done():
                reading.cancel()
        if reading not in done:
            if stopping in done:
                raise self._not_ready()
            raise ApiError(
                408,
                f"the request body did not arrive within {self.limits.body_timeout_s:g} s",
                "request_timeout",
            )
        try:
            reading.result()
        except ClientDisconnect:
            raise ApiError(400, "the client went away", "client_disconnected") from None
        return bytes(body)

    def _input_type(self, parsed: EmbeddingRequest, served: str) -> InputType:
        """``input_type``, else the model alias's, else the server's default; a conflict is an
        error."""
        from_alias: InputType | None = None
        if parsed.model is not None and parsed.model != served:
            if parsed.model == f"{served}:query":
                from_alias = "query"
            elif parsed.model == f"{served}:document":
                from_alias = "document"
            else:
                raise ApiError(
                    400,
                    f"model {parsed.model!r} is not served here; this server serves {served!r} "
                    f"(also as {served + ':query'!r} and {served + ':document'!r})",
                    "model_not_found",
                )
        if parsed.input_type is not None and from_alias not in (None, parsed.input_type):
            raise ApiError(
                400,
                f"input_type {parsed.input_type!r} contradicts model {parsed.model!r}",
                "conflicting_input_type",
            )
        return parsed.input_type or from_alias or self.default_input_type

    def _texts(self, parsed: EmbeddingRequest) -> list[str]:
        if parsed.dimensions is not None:
            raise ApiError(
                400,
                "dimensions is not supported: the model is not trained for truncated vectors",
                "unsupported_parameter",
            )
        items = [parsed.input] if isinstance(parsed.input, str) else parsed.input
        if not items:
            raise ApiError(400, "input is an empty list", "empty_input")
        if not all(isinstance(item, str) for item in items):
            raise ApiError(
                400,
                "token arrays are not accepted: send text, which the server tokenizes with "
                "the model's own tokenizer",
                "token_input_unsupported",
            )
        texts = [item for item in items if isinstance(item, str)]
        limits = self.limits
        if len(texts) > limits.max_texts_per_request:
            raise ApiError(
                413,
                f"{len(texts)} texts in one request; at most {limits.max_texts_per_request}",
                "too_many_texts",
            )
        for index, text in enumerate(texts):
            if len(text) > limits.max_text_chars:
                raise ApiError(
                    413,
                    f"text at index {index} has {len(text)} characters; at most "
                    f"{limits.max_text_chars}",
                    "text_too_long",
                )
        try:
            return validate_texts(texts)
        except ValueError as error:
            raise ApiError(400, str(error), "invalid_text") from None

    async def _wait(self, job: Job, started: float) -> np.ndarray:
        assert self.batcher is not None
        left = self.limits.request_timeout_s - (time.monotonic() - started)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), max(left, 0.0))
        except asyncio.TimeoutError:
            self.batcher.withdraw(job)
            raise ApiError(
                503,
                f"not embedded within {self.limits.request_timeout_s:g} s; the server is busy",
                "timeout",
                "server_error",
            ) from None
        except ShuttingDownError as error:
            raise ApiError(503, str(error), "shutting_down", "server_error") from None
        except Exception as error:  # the batch failed; the log has the traceback
            raise ApiError(
                500, f"embedding failed: {error}", "embedding_failed", "server_error"
            ) from error


def _token_counter(reranker: TextReranker) -> Callable[[str, Sequence[str]], int]:
    """Tokens of the pairs as the reranker's tokenizer counts them (0 for an API reranker, whose
    provider bills its own)."""
    tokenizer = getattr(reranker, "tokenizer", None)

    def count(query: str, documents: Sequence[str]) -> int:
        if tokenizer is None or not documents:
            return 0
        encoded = tokenizer([query] * len(documents), list(documents), truncation=True)
        return sum(len(ids) for ids in encoded["input_ids"])

    return count


def _slices(texts: list[str]) -> list[tuple[int, int]]:
    """(start, stop) of consecutive slices of at most :data:`_COUNT_SLICE_TEXTS` texts and,
    unless one text alone is longer, :data:`_COUNT_SLICE_CHARS` characters."""
    slices = []
    start = chars = 0
    for index, text in enumerate(texts):
        if index > start and (
            index - start >= _COUNT_SLICE_TEXTS or chars + len(text) > _COUNT_SLICE_CHARS
        ):
            slices.append((start, index))
            start, chars = index, 0
        chars += len(text)
    if start < len(texts):
        slices.append((start, len(texts)))
    return slices


def _validation_error(error: ValidationError) -> ApiError:
    """400 for a body that is not JSON (OpenAI's answer), 422 for JSON of the wrong shape."""
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return ApiError(400, f"the body is not valid JSON: {first['msg']}", "invalid_json")
    location = ".".join(str(part) for part in first["loc"]) or "body"
    return ApiError(422, f"{location}: {first['msg']}", "invalid_request_body")


def _encode_vectors(vectors: np.ndarray, parsed: EmbeddingRequest) -> list[Any]:
    if parsed.encoding_format == "base64":
        little_endian = vectors.astype("<f4", copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little_endian]
    return list(vectors)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error.response()


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405, in the same shape as every other error."""
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return ApiError(error.status_code, str(error.detail), code).response()


def create_app(service: EmbeddingService) -> Starlette:
    """The ASGI application; run it with uvicorn, or in process with Starlette's TestClient."""
    return Starlette(
        routes=[
            Route("/v1/embeddings", service.embeddings, methods=["POST"]),
            Route("/v1/rerank", service.rerank, methods=["POST"]),
            Route("/v1/models", service.models, methods=["GET"]),
            Route("/health", service.health, methods=["GET"]),
            Route("/metrics", service.metrics_text, methods=["GET"]),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        lifespan=service.lifespan,
    )


#: Seconds SIGTERM waits for open requests before the server closes them and exits.
GRACE_PERIOD_S = 10
#: Seconds a new connection has to send its request line and headers.
HEADER_TIMEOUT_S = 10
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 5


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header read timeout: a connection that has not sent a
    whole request head within :data:`HEADER_TIMEOUT_S` is closed (uvicorn only times out idle
    keep-alive connections, so a client trickling headers would hold a connection forever)."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the queue to flush as soon as a stop signal arrives: uvicorn
    waits for open requests before the app's shutdown, and those requests wait on the queue."""

    def __init__(self, config: uvicorn.Config, service: EmbeddingService) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.begin_drain()
        super().handle_exit(sig, frame)


def serve(
    service: EmbeddingService,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    listening: socket.socket | None = None,
) -> None:
    """Run the server until SIGTERM or Ctrl-C; raise if the model could not be loaded.

    ``listening``: a socket from :func:`~youtu_rag.serve.sockets.listen`, bound by the caller
    before the slow imports (then ``host`` and ``port`` are its own); None binds one here,
    before the model loads.
    """
    if listening is None:
        listening = listen(host, port)
    host, port = listening.getsockname()[:2]
    config = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        access_log=False,
        lifespan="on",
        http=_HeaderTimeoutProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACE_PERIOD_S,
    )
    server = _DrainingServer(config, service)

    def stop(error: BaseException) -> None:
        server.should_exit = True

    service.on_load_failure = stop
    with listening:
        server.run(sockets=[listening])
    if isinstance(service.load_error, ModelNotFoundError):  # its own one-line message
        raise service.load_error
    if service.load_error is not None:
        raise RuntimeError(f"cannot load the model: {service.load_error}") from service.load_error
