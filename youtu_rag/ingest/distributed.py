"""Ray Data: embed a dataset on a pool of model actors, and index files from a cluster.

Ray Data's documented pattern for batch inference is a stateful class in ``map_batches`` on an
actor pool: each actor loads one model once (one GPU each, or a share of the CPUs) and embeds
batch after batch. Only the scheduling is new here. Chunking, ids, the collection fingerprint and
its guard are the local functions of :mod:`youtu_rag.ingest.pipeline` and
:mod:`youtu_rag.index.store`, so an
index built on a cluster holds the same ids and vectors as one built by ``youtu-rag index``.

What runs where in :func:`index_with_ray`:

- a task lists the files; another loads the model once to create or check the collection (the
  local guard) and to build the tokenizer-measured chunker, then frees it; the driver checks
  the collection's chunking rules as locally (refused, or re-chunked with ``rechunk``);
- tasks read and chunk the files and ask the Chroma server which chunks each file has already;
- an actor pool embeds the new chunks;
- the driver writes the vectors to the Chroma server, in batches within the server's maximum,
  then deletes the chunks they replace (never the other way round, as locally).

The driver never loads a model. It holds the list of files, one summary per file (its status and
the ids of its replaced chunks) and one write batch at a time. Between chunking and embedding the
new chunks' texts live in Ray's object store, which spills to disk beyond its memory.

A killed actor is restarted and its unfinished batches are retried by Ray Data itself: its actor
pools default to ``max_restarts=-1`` and ``max_task_retries=-1`` (setting them through
``map_batches`` is deprecated since Ray 2.60). A batch embedded twice is written twice under the
same ids, so the index still holds each chunk once.

This is the only module that imports Ray (the ``ray`` extra).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
import torch
from ray.data import ActorPoolStrategy, Dataset
from tqdm.auto import tqdm

from youtu_rag.backends.protocol import describe_model
from youtu_rag.index.lexical_sync import LexicalMirror
from youtu_rag.index.store import (
    DEFAULT_COLLECTION,
    ChromaStore,
    CollectionNotFoundError,
    check_model,
    connect,
    describe,
    open_records,
)
from youtu_rag.ingest.chunking import Chunker
from youtu_rag.ingest.pdf import OcrMode
from youtu_rag.ingest.pipeline import (
    DEFAULT_BATCH_SIZE,
    IngestReport,
    Skipped,
    check_chunking,
    finish_rechunk,
    make_chunker,
    plan_file,
    plan_run,
    prune_gone,
    source_name,
    unreadable_reason,
)
from youtu_rag.model.embedder import YoutuEmbedder
from youtu_rag.model.loading import clear_backbone_cache
from youtu_rag.model.profiles import YOUTU_EMBEDDING

logger = logging.getLogger(__name__)

Kind = Literal["document", "query"]
#: Files read and chunked per Ray task.
FILES_PER_TASK = 16
EMBEDDING_COLUMN = "embedding"

# One row per file: its status and, for its new chunks only, ids, texts and positions.
_PLAN_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("status", pa.string()),
        ("ids", pa.list_(pa.string())),
        ("texts", pa.list_(pa.string())),
        ("chunks", pa.list_(pa.int64())),
        ("extras", pa.list_(pa.string())),
        ("stale", pa.list_(pa.string())),
        ("new", pa.int64()),
        ("reason", pa.string()),
    ]
)


# --- the cluster -----------------------------------------------------------------------------


@contextmanager
def ray_cluster(address: str | None = None, *, logging_level: int = logging.INFO) -> Iterator[None]:
    """Join the Ray cluster at ``address``, or start a local one; shut down only what we started.

    ``address`` is what ``ray.init`` takes: ``"auto"`` joins the cluster running on this machine,
    ``"HOST:PORT"`` or ``"ray://HOST:10001"`` a remote one; ``None`` joins ``RAY_ADDRESS`` when
    set, else starts a local cluster on this machine's CPUs and GPUs. Inside a process already
    connected to Ray, the connection is used as it is. ``logging_level`` is that of Ray's logs
    in this process.
    """
    if ray.is_initialized():
        yield
        return
    # Workers' logs stay in Ray's log files: their errors come back as exceptions.
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging_level,
    )
    try:
        yield
    finally:
        ray.shutdown()


# --- embedding a dataset --------------------------------------------------------------------


class _EmbedBatches:
    """One actor of the pool: one embedder, loaded once, for every batch it is sent."""

    def __init__(
        self, model: str, column: str, kind: Kind, threads: int | None, options: dict[str, Any]
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.column = column
        embedder = YoutuEmbedder(model, **options)
        self.encode = embedder.encode_documents if kind == "document" else embedder.encode_queries

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.column not in batch:
            raise KeyError(f"the dataset has no column {self.column!r} (it has {sorted(batch)})")
        return {**batch, EMBEDDING_COLUMN: self.encode(batch[self.column].tolist())}


def cpus_per_actor(actors: int, *, spare: float = 0) -> int:
    """The most whole CPUs each of ``actors`` CPU actors can have with all of them placed at once.

    Counts per node (an actor runs on one node), keeping ``spare`` CPUs free on the largest node
    if that still fits every actor; 1 if even that does not fit (the rest then wait for CPUs).
    """
    alive = [node for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]
    nodes = [float(node["Resources"].get("CPU", 0)) for node in alive]
    nodes.sort(reverse=True)
    for keep in dict.fromkeys((spare, 0.0)):
        free = [nodes[0] - keep, *nodes[1:]] if nodes else []
        for cpus in range(int(max(free, default=0)), 0, -1):
            if sum(int(node // cpus) for node in free) >= actors:
                return cpus
    logger.warning("the cluster has fewer CPUs than %d actors: some will wait for CPUs", actors)
    return 1


def embed_dataset(
    ds: Dataset,
    *,
    model: str = YOUTU_EMBEDDING,
    column: str = "text",
    kind: Kind = "document",
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
    **embedder_options: Any,
) -> Dataset:
    """``ds`` with an ``embedding`` column: the unit float32 vector of each row's ``column``.

    ``concurrency`` actors each load one :class:`~youtu_rag.YoutuEmbedder` (``embedder_options``
    are its arguments) and embed ``batch_size`` rows per call, with the document or the query
    instruction (``kind``); the embedder cuts its own forward passes inside a batch. With
    ``num_gpus=1`` each actor has a GPU of its own. CPU actors (``num_gpus=0``, the default) run
    on ``device="cpu"`` with ``num_cpus`` CPUs and as many torch threads each; by default the
    cluster's CPUs split between them, one CPU left over where possible, because Ray Data's
    upstream tasks (reading, mapping) wait for a free CPU and a pool holding every CPU stalls a
    pipeline that still has tasks upstream of it.
    """
    if kind not in ("document", "query"):
        raise ValueError(f"kind must be 'document' or 'query', got {kind!r}")
    if batch_size < 1 or concurrency < 1:
        raise ValueError(
            f"batch_size and concurrency must be at least 1, got {batch_size} and {concurrency}"
        )
    if num_gpus < 0:
        raise ValueError(f"num_gpus must not be negative, got {num_gpus}")
    on_gpu = num_gpus > 0
    if not on_gpu and embedder_options.get("device") is None:
        embedder_options["device"] = "cpu"
    if num_cpus is None:
        num_cpus = 1 if on_gpu else cpus_per_actor(concurrency, spare=1)
    return ds.map_batches(
        _EmbedBatches,
        fn_constructor_kwargs={
            "model": model,
            "column": column,
            "kind": kind,
            "threads": None if on_gpu else max(1, int(num_cpus)),
            "options": embedder_options,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus if on_gpu else None,
        udf_modifying_row_count=False,
    )


# --- indexing files -------------------------------------------------------------------------


@contextmanager
def _original_errors() -> Iterator[None]:
    """Raise the error a task or actor raised, not Ray's wrappers with their remote traceback.

    A wrong path, chunk size or model then reads as it does locally (and as one CLI line).
    """
    try:
        yield
    except ray.exceptions.RayError as error:
        cause: BaseException = error
        while isinstance(cause, ray.exceptions.RayError):
            inner = getattr(cause, "cause", None) or cause.__cause__
            if inner is None:
                raise
            cause = inner
        raise cause from error


def _prepare(
    url: str,
    collection: str,
    model: str,
    chunk_size: int | None,
    chunk_overlap: int | None,
    separators: str | Sequence[str] | None,
    options: dict[str, Any],
) -> Chunker:
    """Create or check the collection exactly as locally, and build the chunker.

    Runs as a task; the worker forgets the model afterwards (and, on a GPU, Ray ends the worker:
    its default ``max_calls`` for GPU tasks is 1), so no idle process keeps it in memory.
    """
    embedder = YoutuEmbedder(model, **options)
    try:
        ChromaStore(embedder, connect(url=url), collection, create=True)
        return make_chunker(embedder, chunk_size, chunk_overlap, separators=separators)
    finally:
        del embedder
        clear_backbone_cache()


def _plan_files(
    batch: pa.Table, *, chunker: Chunker, url: str, collection: str, ocr: OcrMode
) -> pa.Table:
    """Read and chunk each file (OCR included, here on the worker), and set its chunk ids
    against those the server holds for it."""
    records = open_records(url=url, collection=collection)
    rows = []
    for given in batch.column("path").to_pylist():
        path = Path(os.fsdecode(given))  # bytes: a name need not be valid UTF-8
        plan = plan_file(path, chunker, records.ids_where({"source": source_name(path)}), ocr)
        if plan.unreadable is not None:
            status = "skipped"
        else:
            status = "empty" if plan.empty else "unchanged" if plan.unchanged else "changed"
        rows.append(
            {
                "source": plan.source,
                "status": status,
                "ids": [plan.ids[index] for index in plan.new],
                "texts": [plan.chunks[index] for index in plan.new],
                "chunks": plan.new,
                "extras": [json.dumps(plan.metadatas[index]) for index in plan.new],
                "stale": plan.stale,
                "new": len(plan.new),
                "reason": plan.unreadable,
            }
        )
    return pa.Table.from_pylist(rows, schema=_PLAN_SCHEMA)


def _new_chunk_rows(plans: pa.Table) -> pa.Table:
    """One row per new chunk: ``id``, ``text``, ``source`` and ``chunk`` (its position)."""
    files = pc.list_parent_indices(plans.column("ids"))
    return pa.table(
        {
            "id": pc.list_flatten(plans.column("ids")),
            "text": pc.list_flatten(plans.column("texts")),
            "source": plans.column("source").take(files),
            "chunk": pc.list_flatten(plans.column("chunks")),
            "extras": pc.list_flatten(plans.column("extras")),
        }
    )


def index_with_ray(
    paths_or_dataset: Sequence[str | Path] | Dataset,
    *,
    url: str,
    collection: str = DEFAULT_COLLECTION,
    model: str = YOUTU_EMBEDDING,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    separators: str | Sequence[str] | None = None,
    rechunk: bool = False,
    drop_others: bool = False,
    prune: bool = False,
    ocr: OcrMode = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = 1,
    num_gpus: float = 0,
    show_progress: bool = False,
    **embedder_options: Any,
) -> IngestReport:
    """Index files into the collection on the Chroma server at ``url`` using the Ray cluster.

    Does what :func:`~youtu_rag.ingest.pipeline.ingest` does, with the same ids, vectors and report:
    re-running writes nothing new, an edited file's chunks are replaced and none left stale,
    empty files are skipped, ``prune`` removes the chunks of files gone from the given folders,
    and the chunking rules are checked and recorded as locally (``rechunk`` re-chunks).
    ``paths_or_dataset`` is files and folders, or a Ray dataset with a ``path`` column (then
    without ``prune``: there are no folders to prune). Every machine must see the files under
    the same paths. ``concurrency`` model actors embed, each on ``num_gpus`` GPUs or, without
    GPUs, on an equal share of the cluster's CPUs; see :func:`embed_dataset`. Connects to the
    running Ray cluster, or starts a local one as any Ray Data call does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    roots = None if isinstance(paths_or_dataset, Dataset) else list(paths_or_dataset)
    if prune and roots is None:
        raise ValueError("prune needs the folders that were indexed, not a dataset of paths")
    # A wrong server or another model's collection fails before anything loads a model.
    with suppress(CollectionNotFoundError):
        check_model(describe(connect(url=url), collection), describe_model(model))
    if num_gpus == 0 and embedder_options.get("device") is None:
        embedder_options["device"] = "cpu"
    cpus = 1 if num_gpus > 0 else cpus_per_actor(concurrency)
    skipped: list[Skipped] = []
    unsupported: dict[str, int] = {}

    with _original_errors():
        if roots is None:
            assert isinstance(paths_or_dataset, Dataset)
            files = paths_or_dataset
        else:
            # The same walk as a local run: the same files, links and reasons.
            planned = ray.get(ray.remote(plan_run).remote([str(root) for root in roots]))
            skipped.extend(planned.skipped)
            unsupported = planned.unsupported
            files = ray.data.from_items([{"path": os.fsencode(path)} for path in planned.files])
        prepare = ray.remote(num_cpus=cpus, num_gpus=num_gpus)(_prepare)
        chunker = ray.get(
            prepare.remote(
                url, collection, model, chunk_size, chunk_overlap, separators, embedder_options
            )
        )
        rechunking = check_chunking(
            open_records(url=url, collection=collection), chunker.rules, rechunk=rechunk
        )
        planning = files.map_batches(
            partial(_plan_files, chunker=chunker, url=url, collection=collection, ocr=ocr),
            batch_size=FILES_PER_TASK,
            batch_format="pyarrow",
        )
        # Ray Data's own bars off for this run's datasets (they copy their parent's context).
        planning.context.enable_progress_bars = False
        plans = planning.materialize()
        statuses: Counter[str] = Counter()
        sources: set[str] = set()
        stale: list[str] = []
        unreadable: list[Skipped] = []
        new = 0
        columns = ["source", "status", "stale", "new", "reason"]
        for row in plans.select_columns(columns).iter_rows():
            statuses[row["status"]] += 1
            sources.add(row["source"])
            stale.extend(row["stale"])
            new += row["new"]
            if row["status"] == "skipped":
                reason = unreadable_reason(row["reason"], len(row["stale"]))
                unreadable.append(Skipped(row["source"], reason))
        report = IngestReport(
            files=len(sources),
            changed=statuses["changed"],
            unchanged=statuses["unchanged"],
            empty=statuses["empty"],
            skipped=[*skipped, *sorted(unreadable, key=lambda entry: entry.path)],
            unsupported=unsupported,
        )
        logger.info(
            "planned %d files: %d new or changed (%d chunks to embed), %d unchanged, %d empty",
            report.files,
            report.changed,
            new,
            report.unchanged,
            report.empty,
        )
        records = open_records(url=url, collection=collection)
        # The driver writes every chunk, so its lexical index (in the local cache, see
        # youtu_rag.index.lexical) follows each write and delete, as a local run's does.
        records.lexical = LexicalMirror(records.client, records.collection)
        if new:
            # One block per batch (and one per actor at least): the actors share the work and a
            # retry redoes one batch. Stored before embedding, so no task upstream of the
            # actors waits for the CPUs they hold.
            blocks = min(new, max(concurrency, -(-new // batch_size)))
            chunks = (
                plans.map_batches(_new_chunk_rows, batch_format="pyarrow")
                .repartition(blocks)
                .materialize()
            )
            del plans
            embedded = embed_dataset(
                chunks,
                model=model,
                batch_size=batch_size,
                concurrency=min(concurrency, blocks),
                num_gpus=num_gpus,
                num_cpus=cpus,
                **embedder_options,
            )
            write_size = min(batch_size, records.client.get_max_batch_size())
            with tqdm(
                total=new, desc="Embedding", unit="chunk", disable=not show_progress
            ) as progress:
                for batch in embedded.iter_batches(batch_size=write_size, batch_format="numpy"):
                    metadatas = [
                        {**json.loads(extras), "source": source, "chunk": chunk}
                        for source, chunk, extras in zip(
                            batch["source"].tolist(),
                            batch["chunk"].tolist(),
                            batch["extras"].tolist(),
                            strict=True,
                        )
                    ]
                    report.chunks_written += records.write(
                        batch["id"].tolist(),
                        batch["text"].tolist(),
                        metadatas,
                        np.asarray(batch[EMBEDDING_COLUMN], dtype=np.float32),
                    )
                    progress.update(len(metadatas))
    if stale:
        report.chunks_deleted += records.delete(stale)
        logger.info("deleted %d replaced chunks", len(stale))
    if prune and roots is not None:
        report.pruned_files = prune_gone(records, roots, sources, report)
    if rechunking:
        finish_rechunk(records, chunker.rules, sources, report, drop_others=drop_others)
    report.total_chunks = records.count()
    records.sync_lexical()
    return report
