"""TencentCloudReranker: relevance scores from Tencent Cloud's LKEAP ``RunRerank`` API.

The same credentials, endpoint rules, retries and errors as the embedding backend (one
:class:`~youtu_rag.backends.tencent_cloud.LkeapConnection`), and the API's documented limits:
at most 60 documents per call, and the query and the documents together at most 2,000
characters. Documents are packed into as many calls as that takes (up to ``concurrency`` in
flight), the scores put back in the documents' order; a document too long to fit beside the
query alone is cut to fit, with one counted warning (a query over half the budget is cut to
half, so a document always has room).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from youtu_rag.backends.tencent_cloud import BACKEND, LkeapConnection, TencentCloudError
from youtu_rag.model.notices import OnceWarnings
from youtu_rag.model.reranker import check_top_n, ranked
from youtu_rag.model.texts import validate_texts

__all__ = ["DEFAULT_RERANK_MODEL", "MAX_DOCS", "MAX_RERANK_CHARACTERS", "TencentCloudReranker"]

logger = logging.getLogger(__name__)

DEFAULT_RERANK_MODEL = "lke-reranker-base"
#: Documented limits of one ``RunRerank`` call.
MAX_DOCS = 60
MAX_RERANK_CHARACTERS = 2000


class TencentCloudReranker:
    """``RunRerank`` scores with :class:`~youtu_rag.model.reranker.Reranker`'s interface."""

    backend = BACKEND

    def __init__(
        self,
        model: str = DEFAULT_RERANK_MODEL,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        protocol: str | None = None,
        secret_id: str | None = None,
        secret_key: str | None = None,
        concurrency: int = 4,
        max_retries: int = 5,
        timeout: float = 60,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.model = model
        self.concurrency = concurrency
        self._lkeap = LkeapConnection(
            region=region,
            endpoint=endpoint,
            protocol=protocol,
            secret_id=secret_id,
            secret_key=secret_key,
            max_retries=max_retries,
            timeout=timeout,
        )
        #: ``Usage.TotalTokens`` summed over this reranker's calls (what the service bills).
        self.total_tokens = 0
        self._lock = threading.Lock()
        self._notices = OnceWarnings(logger)

    @property
    def model_name(self) -> str:
        """``tencent-cloud:<model>``: the string that selects this backend everywhere."""
        return f"{BACKEND}:{self.model}"

    def __repr__(self) -> str:
        return (
            f"TencentCloudReranker({self.model!r}, region={self._lkeap.region!r}, "
            f"endpoint={self._lkeap.protocol}://{self._lkeap.endpoint})"
        )

    def warning_counts(self) -> dict[str, int]:
        """How often each warning happened, though each is logged once: ``"truncated"``."""
        return self._notices.counts()

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """The relevance score of each of ``documents`` for ``query``, in their order."""
        query = validate_texts([query])[0]
        items = validate_texts(list(documents))
        self._lkeap.require_credentials()
        if not items:
            return []
        if len(query) > MAX_RERANK_CHARACTERS // 2:
            self._notices.warn(
                "truncated", 1, "a query over %d characters was cut", MAX_RERANK_CHARACTERS // 2
            )
            query = query[: MAX_RERANK_CHARACTERS // 2]
        room = MAX_RERANK_CHARACTERS - len(query)
        cut = sum(1 for doc in items if len(doc) > room)
        if cut:
            self._notices.warn(
                "truncated",
                cut,
                "%d of %d documents do not fit beside the query in %d characters and were cut",
                cut,
                len(items),
                MAX_RERANK_CHARACTERS,
            )
        calls = _pack([doc[:room] for doc in items], room)
        with ThreadPoolExecutor(min(self.concurrency, len(calls))) as pool:
            answers = list(pool.map(lambda call: self._call(query, call), calls))
        return [score for answer in answers for score in answer]

    def rank(
        self, query: str, documents: Sequence[str], top_n: int | None = None
    ) -> list[tuple[int, float]]:
        """(index into ``documents``, score) pairs, best first, the ``top_n`` best."""
        check_top_n(top_n)
        return ranked(self.score(query, documents), top_n)

    def _call(self, query: str, docs: list[str]) -> list[float]:
        request = self._lkeap.sdk.models.RunRerankRequest()
        request.Query = query
        request.Docs = docs
        request.Model = self.model
        response: Any = self._lkeap.call("RunRerank", request, self.model)
        scores = list(response.ScoreList or [])
        if len(scores) != len(docs):
            raise TencentCloudError(
                "InvalidResponse", f"RunRerank returned {len(scores)} scores for {len(docs)} docs"
            )
        usage = getattr(response.Usage, "TotalTokens", None)
        with self._lock:
            self.total_tokens += int(usage or 0)
        return [float(score) for score in scores]


def _pack(documents: list[str], room: int) -> list[list[str]]:
    """Consecutive documents in calls of at most :data:`MAX_DOCS` and ``room`` characters."""
    calls: list[list[str]] = []
    current: list[str] = []
    used = 0
    for doc in documents:
        if current and (len(current) == MAX_DOCS or used + len(doc) > room):
            calls.append(current)
            current, used = [], 0
        current.append(doc)
        used += len(doc)
    if current:
        calls.append(current)
    return calls
