"""Dynamic batching: the texts of every client's requests share forward passes.

One queue holds the requests of all clients; one worker forms each forward pass from it, by the
core's own rule (:meth:`YoutuEmbedder.rows_per_batch`: ``batch_size`` rows, and no more than the
padded-token budget allows for the longest row), and hands the texts to
:meth:`YoutuEmbedder.encode`, which tokenizes, sorts, pools and normalises them as it does in
process. A batch holds texts of one prefix (queries or documents) and is filled round-robin, one
text per request in turn, so a large request cannot crowd out a small one. A request that had
texts in a batch goes back to the end of the queue when that batch ends. A batch that is not
full waits at most ``max_wait_s`` after its oldest text arrived, for more texts to fill it.

A forward pass cannot be interrupted, and on a CPU its time grows with its rows: a small request
put in a full batch beside a large one would wait for that whole batch on top of the one
running. So small requests (all their texts fit one batch) take turns with large ones:
after a batch of large requests, the small requests waiting get a batch of their own, and while
small requests keep coming, large requests go in batches of half the usual rows. A small request
arriving while a batch runs is answered after that (half) batch and its own small one; a large
request still gets every other forward pass however many small ones arrive.

The model runs in one thread of its own (``executor``), so the event loop keeps accepting
requests while a batch runs; what arrives meanwhile forms the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from youtu_rag.serve.metrics import ServerMetrics

if TYPE_CHECKING:
    from youtu_rag.model.embedder import YoutuEmbedder

logger = logging.getLogger(__name__)


#: While small requests came within this many batches, a large request's batches take half
#: the usual rows: a small request then waits for half a batch, at little cost on a CPU (where
#: a forward pass costs about the same per token at any size).
_RECENT_SMALL = 4


class QueueFullError(Exception):
    """More texts are waiting than the server accepts; the client should retry later."""


class ShuttingDownError(Exception):
    """The server is draining its queue before it stops and takes no new work."""


@dataclass(eq=False)
class Job:
    """One request's texts on their way through the queue."""

    texts: list[str]
    lengths: list[int]
    prefix: str
    input_type: str
    arrived: float
    future: asyncio.Future[np.ndarray]
    vectors: np.ndarray
    #: More texts than one forward pass holds: served in turns with the small requests.
    large: bool = False
    #: Texts handed to a batch so far; they are handed out in order.
    scheduled: int = 0
    #: Texts whose vectors are not back yet.
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.texts)

    @property
    def waiting(self) -> int:
        return len(self.texts) - self.scheduled


@dataclass
class _Batch:
    rows: list[tuple[Job, int]]
    full: bool
    oldest: float


class Batcher:
    """The queue and its worker; :meth:`run` is the worker, one per server."""

    def __init__(
        self,
        embedder: YoutuEmbedder,
        executor: Executor,
        metrics: ServerMetrics,
        *,
        max_wait_s: float,
        max_queued_texts: int,
        max_requests_per_batch: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be at least 0, got {max_wait_s}")
        if max_requests_per_batch is not None and max_requests_per_batch < 1:
            raise ValueError(
                f"max_requests_per_batch must be at least 1, got {max_requests_per_batch}"
            )
        self.embedder = embedder
        self.executor = executor
        self.metrics = metrics
        self.max_wait_s = max_wait_s
        self.max_queued_texts = max_queued_texts
        self.max_requests_per_batch = max_requests_per_batch
        self.clock = clock
        #: Forward passes run so far.
        self.batches = 0
        self._queue: list[Job] = []
        self._in_flight: list[Job] = []
        #: Whether the last batch served a large request: then small ones go next.
        self._served_large = False
        #: Batches since the last one of small requests (large while none came).
        self._since_small = _RECENT_SMALL
        self._queued_texts = 0
        self._draining = False
        self._wakeup = asyncio.Event()

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    @property
    def draining(self) -> bool:
        return self._draining

    def submit(self, texts: list[str], lengths: list[int], prefix: str, input_type: str) -> Job:
        """Queue a request's texts; await ``job.future`` for their vectors in input order."""
        if self._draining:
            raise ShuttingDownError("the server is shutting down")
        if self._queued_texts + len(texts) > self.max_queued_texts:
            raise QueueFullError(
                f"{self._queued_texts} texts are queued and the server holds at most "
                f"{self.max_queued_texts}; retry later"
            )
        job = Job(
            texts=texts,
            lengths=lengths,
            prefix=prefix,
            input_type=input_type,
            arrived=self.clock(),
            future=asyncio.get_running_loop().create_future(),
            vectors=np.empty((len(texts), self.embedder.dimension), dtype=np.float32),
            large=len(texts) > self.embedder.rows_per_batch(max(lengths, default=0)),
        )
        self._queue.append(job)
        self._set_queued(self._queued_texts + len(texts))
        self._wakeup.set()
        return job

    def withdraw(self, job: Job) -> None:
        """Drop what is still queued of a request its client no longer waits for."""
        if job in self._queue:
            self._queue.remove(job)
            self._set_queued(self._queued_texts - job.waiting)
            job.scheduled = len(job.texts)
        if not job.future.done():
            job.future.cancel()

    def drain(self) -> None:
        """Take no new work; run what is queued without waiting for batches to fill."""
        if not self._draining:
            logger.info("draining: %d queued texts left to embed", self._queued_texts)
        self._draining = True
        self._wakeup.set()

    async def run(self) -> None:
        """Form and run batches until drained and empty."""
        try:
            while True:
                if not self._queue:
                    if self._draining:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._form_batch()
                delay = batch.oldest + self.max_wait_s - self.clock()
                if not batch.full and not self._draining and delay > 0:
                    self._wakeup.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), delay)
                    continue
                await self._run_batch(batch.rows)
        finally:
            for job in self._queue + self._in_flight:
                if not job.future.done():
                    job.future.set_exception(ShuttingDownError("the server stopped"))

    def _form_batch(self) -> _Batch:
        """The next forward pass: the small requests when it is their turn (see the module
        notes), else the large ones; of those, the prefix of the one first in line, then
        texts of that prefix, one per request in queue order, until the core's rule says the
        batch is full."""
        small = [job for job in self._queue if not job.large]
        large = [job for job in self._queue if job.large]
        queue = small if small and (self._served_large or not large) else large
        halved = queue is large and self._since_small < _RECENT_SMALL

        def limit(width: int) -> int:
            rows = self.embedder.rows_per_batch(width)
            return max(1, rows // 2) if halved else rows

        prefix = queue[0].prefix
        jobs = [job for job in queue if job.prefix == prefix]
        if self.max_requests_per_batch is not None:
            jobs = jobs[: self.max_requests_per_batch]
        cursors = [job.scheduled for job in jobs]
        oldest = min(job.arrived for job in jobs)
        rows: list[tuple[Job, int]] = []
        width = 0
        while True:
            added = False
            for slot, job in enumerate(jobs):
                index = cursors[slot]
                if index == len(job.texts):
                    continue
                grown = max(width, job.lengths[index])
                if len(rows) + 1 > limit(grown):
                    return _Batch(rows, True, oldest)
                rows.append((job, index))
                cursors[slot] = index + 1
                width = grown
                added = True
                # Fewer rows fit as the width grows, so at the cap nothing more can join.
                if len(rows) == limit(width):
                    return _Batch(rows, True, oldest)
            if not added:
                return _Batch(rows, False, oldest)

    async def _run_batch(self, rows: list[tuple[Job, int]]) -> None:
        started = self.clock()
        jobs = list(dict.fromkeys(job for job, _ in rows))
        self._served_large = any(job.large for job in jobs)
        self._since_small = self._since_small + 1 if self._served_large else 0
        for job, index in rows:
            job.scheduled = index + 1
            self.metrics.queue_wait.observe(started - job.arrived)
        self._queue = [job for job in self._queue if job.waiting]
        self._set_queued(self._queued_texts - len(rows))
        prefix = rows[0][0].prefix
        texts = [job.texts[index] for job, index in rows]
        self.batches += 1
        self._in_flight = jobs
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.embedder.encode, texts, prefix
            )
        except Exception as error:  # every request of the batch learns why; the server lives on
            logger.exception("a batch of %d texts failed", len(rows))
            for job in jobs:
                if job in self._queue:
                    self._queue.remove(job)
                    self._set_queued(self._queued_texts - job.waiting)
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self._in_flight = []
        self.metrics.batch_texts.observe(len(rows))
        self.metrics.batch_requests.observe(len(jobs))
        self.metrics.batch_seconds.observe(self.clock() - started)
        for (job, index), vector in zip(rows, vectors, strict=True):
            job.vectors[index] = vector
            job.remaining -= 1
            if job.remaining == 0 and not job.future.done():
                job.future.set_result(job.vectors)
        # Served requests go to the back: what arrived while this batch ran comes first.
        served = [job for job in jobs if job in self._queue]
        self._queue = [job for job in self._queue if job not in served] + served

    def _set_queued(self, count: int) -> None:
        self._queued_texts = count
        self.metrics.queued_texts.set(count)
