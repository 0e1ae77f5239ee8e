"""TencentCloudEmbedder: Youtu embeddings from Tencent Cloud's LKEAP ``GetEmbedding`` API.

No model download and no GPU: the quickest path to production, and on a laptop CPU often the only
practical way to index a real corpus. Requests are signed by the official SDK (extra
``tencent-cloud``), which is imported only when an embedder is built, so the rest of youtu-rag
works without it. Credentials never reach ``repr``, logs, errors or stored configs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from youtu_rag.backends.addresses import parse_endpoint
from youtu_rag.model.instructions import format_prefix, resolve_task
from youtu_rag.model.notices import OnceWarnings
from youtu_rag.model.texts import validate_texts

logger = logging.getLogger(__name__)

TextType = Literal["query", "document"]

#: How a model string names this backend: ``tencent-cloud:lke-text-embedding-v1``.
BACKEND = "tencent-cloud"
DEFAULT_MODEL = "lke-text-embedding-v1"
DEFAULT_REGION = "ap-guangzhou"
DEFAULT_ENDPOINT = "lkeap.tencentcloudapi.com"
SECRET_ID_ENV = "TENCENTCLOUD_SECRET_ID"
SECRET_KEY_ENV = "TENCENTCLOUD_SECRET_KEY"
REGION_ENV = "TENCENTCLOUD_REGION"
#: A host (``lkeap.tencentcloudapi.com``) or URL (``http://127.0.0.1:8080``) replacing the
#: default endpoint, so a command line or an adapter can reach another endpoint unchanged.
ENDPOINT_ENV = "YOUTU_RAG_TENCENT_CLOUD_ENDPOINT"

#: Documented limits of one ``GetEmbedding`` call.
MAX_INPUTS = 7
MAX_CHARACTERS = 2000
#: Models the documentation says ignore ``Instruction``; others get it with ``TextType=query``
#: (lke-text-embedding-v1 by the documentation, youtu-embedding-v1 by the publisher's script).
IGNORES_INSTRUCTION = frozenset({"lke-text-embedding-v2"})
#: Error codes worth retrying: rate limits, the service's internal errors, non-200 answers and
#: network failures (the SDK reports the last two as ServerNetworkError / ClientNetworkError).
TRANSIENT_CODES = frozenset({"InternalError", "ServerNetworkError", "ClientNetworkError"})
#: Backoff: a random wait up to ``RETRY_WAIT * 2**n`` seconds before retry n+1, at most
#: ``RETRY_WAIT_MAX`` ("full jitter", so throttled workers do not retry in lockstep).
RETRY_WAIT = 0.5
RETRY_WAIT_MAX = 20.0
_SDK_HINT = "the Tencent Cloud backend needs its SDK: pip install 'youtu-rag[tencent-cloud]'"


class TencentCloudError(RuntimeError):
    """``GetEmbedding`` failed; ``code`` is the service's error code (``AuthFailure...``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_transient(error: BaseException) -> bool:
    code = str(getattr(error, "code", ""))
    return code in TRANSIENT_CODES or code.startswith("RequestLimitExceeded")


class _RedactCredential(logging.Filter):
    """The SDK logs each request at DEBUG, ``Authorization`` header (and so the SecretId)
    included; this rewrites the SecretId there. The key itself is never in a request."""

    _credential = re.compile(r"Credential=[^/\s,]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Credential=" in message:
            record.msg, record.args = self._credential.sub("Credential=***", message), ()
        return True


_SDK_LOGGER = "tencentcloud_sdk_common"
_redact = _RedactCredential()


class LkeapConnection:
    """What every LKEAP call shares: the endpoint (parsed strictly, see
    :mod:`youtu_rag.backends.addresses`), region and credentials, one SDK client per thread,
    retries with backoff for transient failures, and errors that name the code and never the
    credentials. ``GetEmbedding`` and ``RunRerank`` go through it."""

    def __init__(
        self,
        *,
        region: str | None,
        endpoint: str | None,
        protocol: str | None,
        secret_id: str | None,
        secret_key: str | None,
        max_retries: int,
        timeout: float,
    ) -> None:
        self.region = region or os.environ.get(REGION_ENV) or DEFAULT_REGION
        address = parse_endpoint(
            endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT, protocol
        )
        #: ``host[:port]`` as the SDK connects to it: the destination check reads the same host.
        self.endpoint = address.netloc
        self.protocol = address.scheme
        self.max_retries = max_retries
        self.timeout = timeout
        self.sdk = _import_sdk()
        self._credential = _credential(self.sdk, secret_id, secret_key)
        self._local = threading.local()
        if self.protocol == "http" and not address.is_loopback:
            logger.warning("texts go to %s unencrypted (protocol http)", self.endpoint)

    def require_credentials(self) -> None:
        """Fail before a call when there are none (see :func:`_credential`)."""
        if self._credential is None:
            raise ValueError(
                "no Tencent Cloud credentials: pass secret_id and secret_key, or set "
                f"{SECRET_ID_ENV} and {SECRET_KEY_ENV}"
            )

    def call(self, action: str, request: Any, model: str) -> Any:
        """``action`` (``GetEmbedding``, ``RunRerank``) with ``request``, retried while the
        failure is transient.

        Raises:
            TencentCloudError: the service's error, or the last transient one.
        """
        tenacity = self.sdk.tenacity
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_random_exponential(multiplier=RETRY_WAIT, max=RETRY_WAIT_MAX),
            retry=tenacity.retry_if_exception(_is_transient),
            before_sleep=lambda state: self._log_retry(action, state),
            reraise=True,
        )
        try:
            return retrying(getattr(self._client(), action), request)
        except self.sdk.error as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise self._error(action, model, error, attempts) from None

    def _client(self) -> Any:
        """This thread's SDK client: each worker keeps its own HTTP session."""
        client = getattr(self._local, "client", None)
        if client is None:
            sdk = self.sdk
            http = sdk.HttpProfile(
                protocol=self.protocol, endpoint=self.endpoint, reqTimeout=self.timeout
            )
            profile = sdk.ClientProfile(httpProfile=http)
            client = sdk.LkeapClient(self._credential, self.region, profile)
            self._local.client = client
        return client

    def _log_retry(self, action: str, state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.info(
            "%s answered %s; retry %d of %d in %.1fs",
            action,
            getattr(error, "code", type(error).__name__),
            state.attempt_number,
            self.max_retries,
            state.next_action.sleep if state.next_action else 0.0,
        )

    def _error(self, action: str, model: str, error: Any, attempts: int) -> TencentCloudError:
        """A one-line error naming the code; the credentials are scrubbed from any echo."""
        code = str(error.code or "UnknownError")
        detail = str(error.message or "").strip()
        for secret in self._credential.get_credential_info()[:2]:
            detail = detail.replace(secret, "***")
        retried = f" after {attempts} attempts" if attempts > 1 else ""
        auth = code.startswith("AuthFailure")
        hint = f"; check {SECRET_ID_ENV} and {SECRET_KEY_ENV}" if auth else ""
        request = f" (RequestId {error.requestId})" if error.requestId else ""
        return TencentCloudError(
            code,
            f"Tencent Cloud {action} ({model}) failed{retried}: {code}: {detail}{request}{hint}",
        )


class TencentCloudEmbedder:
    """Embeddings from Tencent Cloud's ``GetEmbedding``, with the local embedder's interface.

    Texts go in calls of at most 7 (``batch_size``), up to ``concurrency`` calls in flight; a
    text over 2000 characters is truncated, with one warning per embedder
    (:meth:`warning_counts` counts them all). Rate
    limits, the service's internal errors and network failures are retried with exponential
    backoff and jitter, ``max_retries`` times; any other error is raised at once as a
    :class:`TencentCloudError` naming its code. Rows come back L2-normalised float32 in input
    order.

    Queries go with ``TextType=query`` and, where the model honours it, an ``Instruction``
    made from ``query_instruction`` (a C-MTEB preset name or task text, as locally) in the
    published prefix format; with ``None`` the service's own query handling applies. Documents
    go with ``TextType=document``.

    ``secret_id`` / ``secret_key`` default to ``TENCENTCLOUD_SECRET_ID`` /
    ``TENCENTCLOUD_SECRET_KEY``; ``region`` to ``TENCENTCLOUD_REGION`` or ap-guangzhou;
    ``endpoint`` (a host, or a URL that also sets ``protocol``) to
    ``YOUTU_RAG_TENCENT_CLOUD_ENDPOINT`` or lkeap.tencentcloudapi.com.
    """

    backend = BACKEND
    pooling = "api"
    document_prefix = ""
    #: Chunks are measured in characters for this backend: the API's limit is in characters.
    max_length = MAX_CHARACTERS

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        protocol: str | None = None,
        secret_id: str | None = None,
        secret_key: str | None = None,
        query_instruction: str | None = None,
        concurrency: int = 4,
        max_retries: int = 5,
        timeout: float = 60,
        batch_size: int = MAX_INPUTS,
        show_progress: bool = False,
    ) -> None:
        if not model:
            raise ValueError("model must name a GetEmbedding model, e.g. lke-text-embedding-v1")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self._lkeap = LkeapConnection(
            region=region,
            endpoint=endpoint,
            protocol=protocol,
            secret_id=secret_id,
            secret_key=secret_key,
            max_retries=max_retries,
            timeout=timeout,
        )
        self.region = self._lkeap.region
        self.endpoint = self._lkeap.endpoint
        self.protocol = self._lkeap.protocol
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        #: Texts per call: what the adapters' ``batch_size`` means here, capped at the API's 7.
        self.batch_size = min(batch_size, MAX_INPUTS)
        self.show_progress = show_progress
        self.query_task = resolve_task(query_instruction or "", "query")
        if self.query_task and model in IGNORES_INSTRUCTION:
            logger.warning("%s ignores instructions; query_instruction is not sent", model)
            self.query_task = ""
        #: The ``Instruction`` sent with queries, empty for none; recorded by the store.
        self.query_prefix = format_prefix(self.query_task)
        #: ``Usage.TotalTokens`` summed over this embedder's calls (what the service bills).
        self.total_tokens = 0
        self._dimension: int | None = None
        self._lock = threading.Lock()
        self._notices = OnceWarnings(logger)

    @property
    def model_name(self) -> str:
        """``tencent-cloud:<model>``: the string that selects this backend everywhere."""
        return f"{BACKEND}:{self.model}"

    @property
    def dimension(self) -> int:
        """Vector size, learnt from the first answer (one short call if asked before any)."""
        if self._dimension is None:
            self.encode(["dimension"], text_type="document")
        assert self._dimension is not None
        return self._dimension

    def __repr__(self) -> str:
        return (
            f"TencentCloudEmbedder({self.model!r}, region={self.region!r}, "
            f"endpoint={self.protocol}://{self.endpoint}, concurrency={self.concurrency})"
        )

    def settings(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this embedder (with :attr:`model`), as JSON: no
        credentials (they come from the environment wherever it is rebuilt), no progress."""
        return {
            "region": self.region,
            "endpoint": self.endpoint,
            "protocol": self.protocol,
            "query_instruction": self.query_task or None,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
        }

    def warning_counts(self) -> dict[str, int]:
        """How often each warning happened, though each is logged once: ``"truncated"``."""
        return self._notices.counts()

    def encode_queries(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed search queries: ``TextType=query`` with the instruction."""
        return self.encode(texts, text_type="query")

    def encode_documents(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed documents (passages): ``TextType=document``."""
        return self.encode(texts, text_type="document")

    def encode(self, texts: str | Sequence[str], text_type: TextType = "document") -> np.ndarray:
        """Embed texts as ``text_type``; an (n, dimension) float32 array of unit rows."""
        items = validate_texts(texts)
        self._lkeap.require_credentials()
        if not items:
            return np.empty((0, self.dimension), dtype=np.float32)
        truncated = sum(1 for text in items if len(text) > MAX_CHARACTERS)
        if truncated:
            self._notices.warn(
                "truncated",
                truncated,
                "%d of %d texts exceed %d characters and were truncated",
                truncated,
                len(items),
                MAX_CHARACTERS,
            )
        inputs = [text[:MAX_CHARACTERS] for text in items]
        batches = [
            inputs[start : start + self.batch_size]
            for start in range(0, len(inputs), self.batch_size)
        ]
        instruction = self.query_prefix if text_type == "query" else ""
        parts: list[np.ndarray] = []
        with (
            ThreadPoolExecutor(min(self.concurrency, len(batches))) as pool,
            tqdm(
                total=len(items), desc="Embedding", unit="text", disable=not self.show_progress
            ) as progress,
        ):
            futures: list[Future[np.ndarray]] = [
                pool.submit(self._call, batch, text_type, instruction) for batch in batches
            ]
            try:
                for future in futures:
                    parts.append(future.result())
                    progress.update(len(parts[-1]))
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
        return np.concatenate(parts)

    def _call(self, inputs: list[str], text_type: TextType, instruction: str) -> np.ndarray:
        """One ``GetEmbedding`` call, retried while the failure is transient."""
        request = self._lkeap.sdk.models.GetEmbeddingRequest()
        request.Model = self.model
        request.Inputs = inputs
        request.TextType = text_type
        if instruction:
            request.Instruction = instruction
        response = self._lkeap.call("GetEmbedding", request, self.model)
        vectors = self._vectors(response, len(inputs))
        usage = getattr(response.Usage, "TotalTokens", None)
        with self._lock:
            self.total_tokens += int(usage or 0)
        return vectors

    def _vectors(self, response: Any, expected: int) -> np.ndarray:
        """The answer's embeddings as unit float32 rows, or an error saying what is wrong."""
        data = response.Data or []
        if len(data) != expected:
            raise TencentCloudError(
                "InvalidResponse", f"GetEmbedding returned {len(data)} vectors for {expected} texts"
            )
        try:
            vectors = np.asarray([item.Embedding for item in data], dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TencentCloudError(
                "InvalidResponse", f"GetEmbedding returned malformed vectors ({error})"
            ) from None
        norms = np.linalg.norm(vectors, axis=1) if vectors.ndim == 2 else np.zeros(0)
        usable = np.isfinite(norms) & (norms > 0)
        if vectors.ndim != 2 or not vectors.shape[1] or not usable.all():
            raise TencentCloudError(
                "InvalidResponse", "GetEmbedding returned empty, zero or non-finite vectors"
            )
        with self._lock:
            if self._dimension is None:
                self._dimension = int(vectors.shape[1])
            elif vectors.shape[1] != self._dimension:
                raise TencentCloudError(
                    "InvalidResponse",
                    f"GetEmbedding returned {vectors.shape[1]}-d vectors after "
                    f"{self._dimension}-d ones",
                )
        result: np.ndarray = (vectors / norms[:, None]).astype(np.float32)
        return result


class _Sdk:
    """The SDK pieces (and the retry library) this module uses, imported once an embedder is
    built."""

    def __init__(self) -> None:
        import tenacity
        from tencentcloud.common import credential
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.lkeap.v20240522 import lkeap_client, models

        self.tenacity = tenacity
        self.Credential = credential.Credential
        self.error = TencentCloudSDKException
        self.ClientProfile = ClientProfile
        self.HttpProfile = HttpProfile
        self.LkeapClient = lkeap_client.LkeapClient
        self.models = models


def _import_sdk() -> _Sdk:
    try:
        sdk = _Sdk()
    except ImportError as error:
        raise ImportError(_SDK_HINT) from error
    sdk_logger = logging.getLogger(_SDK_LOGGER)
    if _redact not in sdk_logger.filters:
        sdk_logger.addFilter(_redact)
    return sdk


def _credential(sdk: _Sdk, secret_id: str | None, secret_key: str | None) -> Any:
    """The SDK credential from the arguments or the environment; ``None`` when there is none.

    A missing credential fails the first call, not the construction: Chroma rebuilds an
    embedding function from its stored config just to validate it, without calling it.
    """
    secret_id = secret_id or os.environ.get(SECRET_ID_ENV)
    secret_key = secret_key or os.environ.get(SECRET_KEY_ENV)
    if not secret_id and not secret_key:
        return None
    try:
        return sdk.Credential(secret_id, secret_key)
    except sdk.error as error:  # its message names the problem (spaces, empty), never the value
        raise ValueError(f"invalid Tencent Cloud credentials: {error.message}") from None
