"""What ``youtu-rag serve`` counts, in Prometheus text format.

One registry per server (not prometheus_client's global one), so two servers in one process,
as in the tests, keep separate counts.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServerMetrics:
    """Requests, texts, tokens, batch sizes, queue wait and latency of one server."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "youtu_rag_requests",
            "Embedding requests answered, by HTTP status.",
            ["status"],
            registry=registry,
        )
        self.texts = Counter(
            "youtu_rag_texts", "Texts embedded, by input type.", ["input_type"], registry=registry
        )
        self.tokens = Counter(
            "youtu_rag_tokens",
            "Tokens embedded (prefix and special tokens included), by input type.",
            ["input_type"],
            registry=registry,
        )
        self.batch_texts = Histogram(
            "youtu_rag_batch_texts",
            "Texts per forward pass.",
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            "youtu_rag_batch_requests",
            "Distinct requests sharing one forward pass.",
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "youtu_rag_batch_seconds",
            "Time of one forward pass, tokenization and pooling included.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "youtu_rag_queue_wait_seconds",
            "Time a text waited in the queue before its forward pass started.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "youtu_rag_request_seconds",
            "Time from a request's arrival to its response, for /v1/embeddings.",
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self.queued_texts = Gauge(
            "youtu_rag_queued_texts",
            "Texts waiting for a forward pass.",
            registry=registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
