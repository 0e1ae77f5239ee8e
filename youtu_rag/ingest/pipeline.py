"""Files and folders -> text segments -> chunks (:mod:`youtu_rag.ingest.chunking`) -> stable ids
-> batched upserts, streamed.

An id is a function of (source path, chunk index, chunk text), so a re-run recognises what is
already indexed and embeds only what changed. Chunks are embedded and written in bounded batches
as they are produced, across and within files, so memory does not grow with a file's size and
every batch written survives whatever happens next. A changed file's stale chunks are deleted only
after all its new chunks are written: a run stopped at any point loses nothing, and the next run
finishes the job. A file that cannot be read, decoded or parsed is skipped and reported, and
leaves nothing behind: no chunk of a read that failed part-way is kept, and the chunks of its
earlier, readable version are removed (the report says how many); the run goes on.

The chunking rules are recorded with the collection. A collection chunked under other rules (or
before rules were recorded) is refused rather than silently mixed with chunks of the new rules;
``rechunk`` re-chunks every file under the given paths. Files of the collection that are not under
them keep their chunks (a collection often holds several folders): they are re-chunked when next
indexed, or removed by ``drop_others``, which names them in a warning before they go.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_text_splitters import TextSplitter
from tqdm.auto import tqdm

from youtu_rag.index.store import ChromaRecords, ChromaStore, StoreError
from youtu_rag.ingest.chunking import (
    DEFAULT_CHUNK_CHARACTERS,
    DEFAULT_CHUNK_TOKENS,
    Chunker,
    ChunkingRules,
    chunk_limit,
    make_chunker,
    make_splitter,
)
from youtu_rag.ingest.formats import (
    MARKDOWN_SUFFIXES,
    PDF_SUFFIX,
    SUPPORTED_SUFFIXES,
    missing_extra,
    open_parts,
)
from youtu_rag.ingest.parts import DocumentKind, Part, Scalar, UnreadableFileError
from youtu_rag.ingest.pdf import OcrMode
from youtu_rag.ingest.reading import TEXT_SUFFIXES, read_text
from youtu_rag.ingest.walk import find_files as walk_files
from youtu_rag.ingest.walk import source_name

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_CHARACTERS",
    "DEFAULT_CHUNK_TOKENS",
    "MARKDOWN_SUFFIXES",
    "PDF_SUFFIX",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "ChunkingRulesError",
    "FilePlan",
    "IngestReport",
    "RunPlan",
    "Skipped",
    "check_chunking",
    "chunk_id",
    "chunk_limit",
    "document_kind",
    "find_files",
    "finish_rechunk",
    "ingest",
    "make_chunker",
    "make_splitter",
    "plan_file",
    "plan_run",
    "prune_gone",
    "read_text",
    "source_name",
    "unreadable_reason",
]

logger = logging.getLogger(__name__)

#: Chunks written together. They are embedded ``embedder.batch_size`` at a time, and a stop
#: request is honoured between those smaller batches.
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class Skipped:
    """A file (or link) the run did not index, and why."""

    path: str
    reason: str


@dataclass
class IngestReport:
    """What one run found and did."""

    files: int = 0
    """Supported files found under the given paths."""
    changed: int = 0
    """Files new or changed since the last run (their chunks were written)."""
    unchanged: int = 0
    """Files whose chunks were all indexed already: nothing embedded, nothing written."""
    empty: int = 0
    """Files with no text, skipped (and any chunks they had before removed)."""
    chunks_written: int = 0
    chunks_deleted: int = 0
    pruned_files: int = 0
    """Files gone from disk whose chunks ``prune`` removed."""
    total_chunks: int = 0
    """Records in the collection after the run."""
    skipped: list[Skipped] = field(default_factory=list)
    """Files that could not be read, decoded or parsed (or whose format needs an extra that is
    not installed), and links that were not followed."""
    unsupported: dict[str, int] = field(default_factory=dict)
    """Files of types that are not read, counted by suffix: listed, never read."""
    ocr_pages: int = 0
    """Pages (of PDFs and images) read by OCR."""
    interrupted: bool = False
    """The run was stopped on request; what it wrote is kept and a re-run continues."""
    rechunked: bool = False
    """The collection was chunked under other rules and every file was chunked anew."""
    dropped_files: int = 0
    """Files not under the paths whose chunks a rechunk with ``drop_others`` removed."""
    other_files: int = 0
    """Files not under the paths that a rechunk left with chunks cut under the old rules."""


class ChunkingRulesError(StoreError):
    """The collection was chunked under other rules; re-chunking it has to be asked for."""


@dataclass(frozen=True)
class RunPlan:
    """What a run reads and what it reports skipped before reading anything; the local and
    the Ray run both start from :func:`plan_run`, so they skip the same things for the same
    reasons."""

    files: list[Path]
    skipped: list[Skipped]
    roots: list[Path]
    unsupported: dict[str, int] = field(default_factory=dict)


def plan_run(paths: Iterable[str | Path]) -> RunPlan:
    """The files to read under ``paths``; the links and entries left out, and the files whose
    format needs an extra that is not installed (with reasons); the other types, counted."""
    found = walk_files(paths)
    skipped = [Skipped(source_name(path), reason) for path, reason in found.skipped]
    files = []
    for path in found.files:
        missing = missing_extra(path.suffix)
        if missing is None:
            files.append(path)
        else:
            skipped.append(Skipped(source_name(path), missing))
    return RunPlan(files, skipped, found.roots, dict(sorted(found.unsupported.items())))


def find_files(paths: Iterable[str | Path]) -> list[Path]:
    """Real paths of the supported files among ``paths`` and inside the folders among them
    (see :mod:`youtu_rag.ingest.walk` for hidden files and symbolic links)."""
    return walk_files(paths).files


def chunk_id(
    source: str, index: int, text: str, metadata: Mapping[str, Scalar] | None = None
) -> str:
    """Stable id of chunk ``index`` of ``source`` with content ``text`` and ``metadata`` (its
    section or page: a chunk that moves to another section is another chunk)."""
    path_hash = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    content = text
    if metadata:
        content += "\x00" + json.dumps(dict(metadata), ensure_ascii=False, sort_keys=True)
    text_hash = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
    return f"{path_hash}-{index}-{text_hash}"


def document_kind(path: Path) -> DocumentKind:
    """How a file's text is structured, from its suffix."""
    suffix = path.suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    return "pdf" if suffix == PDF_SUFFIX else "text"


def check_chunking(records: ChromaRecords, rules: ChunkingRules, *, rechunk: bool) -> bool:
    """Whether this run re-chunks the collection: it was chunked under other rules (or before
    rules were recorded) and ``rechunk`` asks for it. An empty collection takes the rules.

    Raises:
        ChunkingRulesError: other rules, and ``rechunk`` is false.
    """
    recorded = records.chunking_record()
    current = rules.to_record()
    if recorded == current:
        return False
    if records.count() == 0:
        records.record_chunking(current)
        return False
    if not rechunk:
        before = "no recorded rules (indexed before youtu-rag recorded them)"
        if recorded is not None:
            before = f"rules {recorded[:300]!r}"  # from the collection: shown, never parsed
        raise ChunkingRulesError(
            f"collection {records.name!r} was chunked under {before}, not {rules.describe()}; "
            "index again with --rechunk to re-chunk every file under these rules"
        )
    logger.info("re-chunking collection %r under %s", records.name, rules.describe())
    return True


def finish_rechunk(
    records: ChromaRecords,
    rules: ChunkingRules,
    seen: set[str],
    report: IngestReport,
    *,
    drop_others: bool = False,
) -> None:
    """After every file under the paths was chunked anew, record the new rules. The other
    files' chunks stay (counted in :attr:`IngestReport.other_files`), unless ``drop_others``:
    then they are removed, each named in a warning before its chunks go."""
    others = sorted(records.sources() - seen)
    if drop_others:
        if others:
            logger.warning(
                "removing the chunks of %d files not under the paths (--drop-others): %s",
                len(others),
                ", ".join(others[:20]) + (", ..." if len(others) > 20 else ""),
            )
        for source in others:
            report.chunks_deleted += records.delete(records.ids_where({"source": source}))
            report.dropped_files += 1
    else:
        report.other_files = len(others)
    records.record_chunking(rules.to_record())
    report.rechunked = True


def ingest(
    store: ChromaStore,
    paths: Sequence[str | Path],
    *,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    separators: str | Sequence[str] | None = None,
    splitter: TextSplitter | None = None,
    rechunk: bool = False,
    drop_others: bool = False,
    prune: bool = False,
    ocr: OcrMode = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool = False,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Index the supported files under ``paths`` into ``store``; safe to re-run at any time.

    Unchanged chunks cost a tokenization and a lookup; a changed file's old chunks are deleted
    once its new ones are written; empty files are skipped (their old chunks removed); files
    that cannot be read are skipped and listed in :attr:`IngestReport.skipped`. With ``prune``,
    chunks of files that were under ``paths`` but are gone are removed too.

    Setting ``stop`` (from a signal handler or another thread) ends the run after the embedding
    batch in progress: what is embedded is written, the report says ``interrupted``, and a
    re-run continues from there. Memory stays bounded by ``batch_size`` chunks and one text
    segment (:data:`~youtu_rag.ingest.reading.SEGMENT_CHARS`), plus the ids of the current
    file's stale chunks, whatever the size of the files.

    Chunks are cut by :func:`~youtu_rag.ingest.chunking.make_chunker`'s splitter (``chunk_size``,
    ``chunk_overlap`` and ``separators``: a preset name or a list of regular expressions), or
    by ``splitter``, any LangChain ``TextSplitter``, used within Markdown sections and PDF pages.
    The rules are recorded with the collection: a collection chunked under other rules raises
    :class:`ChunkingRulesError` unless ``rechunk``, which re-chunks every file under ``paths``
    (see :func:`finish_rechunk` for the files that are not, and ``drop_others``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    found = plan_run(paths)
    chunker = make_chunker(
        store.embedder, chunk_size, chunk_overlap, separators=separators, splitter=splitter
    )
    rechunking = check_chunking(store, chunker.rules, rechunk=rechunk)
    report = IngestReport(files=len(found.files), unsupported=found.unsupported)
    for entry in found.skipped:
        _skip(report, entry.path, entry.reason)
    sizes = {path: _size(path) for path in found.files}
    with tqdm(
        total=sum(sizes.values()),
        desc="Indexing",
        unit="B",
        unit_scale=True,
        disable=not show_progress,
    ) as progress:
        writer = _Writer(
            store,
            min(batch_size, store.client.get_max_batch_size()),
            report,
            progress,
            stop or threading.Event(),
            ocr,
        )
        try:
            for path in found.files:
                if writer.should_stop():
                    break
                _index_file(writer, path, sizes[path], chunker)
            writer.flush()
        finally:
            if writer.ocr_progress is not None:
                writer.ocr_progress.close()
    report.interrupted = writer.stopped
    seen = {source_name(path) for path in found.files}
    if prune and not report.interrupted:
        report.pruned_files = prune_gone(store, found.roots, seen, report)
    if rechunking and not report.interrupted:
        finish_rechunk(store, chunker.rules, seen, report, drop_others=drop_others)
    store.sync_lexical()
    report.total_chunks = store.count()
    return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def unreadable_reason(reason: str, removed: int) -> str:
    """The report line of a file skipped as unreadable, saying what became of its chunks.

    A skipped file leaves nothing behind: whatever part of it was read is not kept, and the
    chunks of an earlier, readable version are removed rather than kept stale (searching for
    text the file no longer holds, or half of it, finds what is not there).
    """
    if not removed:
        return reason
    return f"{reason}; its {removed} indexed chunk{'s were' if removed != 1 else ' was'} removed"


def _skip(report: IngestReport, source: str, reason: str) -> None:
    report.skipped.append(Skipped(source, reason))
    logger.info("skipped %s: %s", source, reason)


@dataclass
class _Chunk:
    id: str
    text: str
    source: str
    index: int
    metadata: dict[str, Scalar]
    weight: int
    """Bytes of the file this chunk stands for on the progress bar."""


class _Writer:
    """Chunks waiting to be embedded and written, and the stale ids to delete after them."""

    def __init__(
        self,
        store: ChromaStore,
        batch_size: int,
        report: IngestReport,
        progress: tqdm[None],
        stop: threading.Event,
        ocr: OcrMode,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.report = report
        self.progress = progress
        self.stop = stop
        self.ocr = ocr
        #: Pages read by OCR, on a bar of their own below the main one, shown once OCR starts.
        self.ocr_progress: tqdm[None] | None = None
        self.stopped = False
        self.pending: list[_Chunk] = []
        self.stale: list[str] = []

    def ocr_page(self, seconds: float) -> None:
        """A page was read by OCR: counted in the report and on its own progress bar."""
        self.report.ocr_pages += 1
        if self.ocr_progress is None:
            self.ocr_progress = tqdm(
                desc="OCR", unit="page", position=1, leave=False, disable=self.progress.disable
            )
        self.ocr_progress.update(1)

    def should_stop(self) -> bool:
        """Whether to stop now: a stop was requested (between batches, or while only reading
        and looking up unchanged chunks)."""
        if self.stop.is_set():
            self.stopped = True
        return self.stopped

    def advance(self, weight: int) -> None:
        if weight:
            self.progress.update(weight)

    def add(self, chunk: _Chunk) -> None:
        self.pending.append(chunk)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def forget(self, source: str) -> int:
        """Drop every chunk of ``source``: the ones queued and the ones stored, from earlier
        runs or from this read before it failed. Returns how many stored ones were removed."""
        self.pending = [chunk for chunk in self.pending if chunk.source != source]
        removed = self.store.delete(self.store.ids_where({"source": source}))
        self.report.chunks_deleted += removed
        return removed

    def finish_file(self, stale: Iterable[str]) -> None:
        """A file's chunks are all queued: its stale ids go once they are written."""
        self.stale.extend(stale)
        if not self.pending:
            self.flush()

    def flush(self) -> None:
        """Embed and write the pending chunks, then delete what they replace, never the other
        way round. Honours a stop request between embedding batches."""
        pending, self.pending = self.pending, []
        embedder = self.store.embedder
        step = embedder.batch_size
        done = 0
        while done < len(pending) and not self.stopped:
            part = pending[done : done + step]
            vectors = embedder.encode_documents([chunk.text for chunk in part])
            written = self.store.upsert(
                [chunk.id for chunk in part],
                [chunk.text for chunk in part],
                [{**c.metadata, "source": c.source, "chunk": c.index} for c in part],
                embeddings=vectors,
            )
            self.report.chunks_written += written
            self.advance(sum(chunk.weight for chunk in part))
            done += len(part)
            logger.info("wrote %d chunks (%d in this run)", written, self.report.chunks_written)
            if self.stop.is_set():
                self.stopped = True
        if self.stopped:
            return  # the files whose stale ids wait here may not be fully written
        if self.stale:
            self.report.chunks_deleted += self.store.delete(self.stale)
            logger.info("deleted %d replaced chunks", len(self.stale))
            self.stale = []


class _Bytes:
    """Parts passed through, counting their UTF-8 bytes: the progress a chunk stands for."""

    def __init__(self, parts: Iterable[Part], budget: int) -> None:
        self.parts = parts
        self.budget = budget
        self.unclaimed = 0

    def __iter__(self) -> Iterator[Part]:
        for part in self.parts:
            weight = min(len(part.text.encode("utf-8", "surrogatepass")), self.budget)
            self.budget -= weight
            self.unclaimed += weight
            yield part

    def claim(self) -> int:
        """Bytes read since the last claim."""
        weight, self.unclaimed = self.unclaimed, 0
        return weight


def _index_file(writer: _Writer, path: Path, size: int, chunker: Chunker) -> None:
    """Queue the new chunks of one file, and its stale ids behind them."""
    source = source_name(path)
    report = writer.report
    index = 0
    new = 0
    stale: list[str] = []
    batch: list[_Chunk] = []
    read = _Bytes((), size)
    try:
        read = _Bytes(open_parts(path, ocr=writer.ocr, on_ocr_page=writer.ocr_page), size)
        for piece in chunker.split_parts(read):
            chunk_key = chunk_id(source, index, piece.text, piece.metadata)
            batch.append(_Chunk(chunk_key, piece.text, source, index, piece.metadata, read.claim()))
            index += 1
            if len(batch) >= writer.batch_size:
                new += _queue_new(writer, source, batch, stale, start=batch[0].index)
                batch = []
            if writer.should_stop():
                return
        # The last lookup reaches past the end: chunks beyond the file's new length are stale.
        new += _queue_new(writer, source, batch, stale, start=index - len(batch), last=True)
    except UnreadableFileError as error:
        _skip(report, source, unreadable_reason(str(error), writer.forget(source)))
        writer.advance(read.claim() + read.budget)
        return
    if writer.stopped:
        return
    writer.advance(read.claim() + read.budget)
    if index == 0:
        report.empty += 1
        logger.info("%s is empty; skipped", source)
    elif new or stale:
        report.changed += 1
    else:
        report.unchanged += 1
    writer.finish_file(sorted(stale))


def _queue_new(
    writer: _Writer,
    source: str,
    batch: list[_Chunk],
    stale: list[str],
    *,
    start: int,
    last: bool = False,
) -> int:
    """Queue the chunks of ``batch`` that are not stored yet, and note the stored chunks of
    ``source`` in its index range (to the end, if ``last``) that it does not reproduce."""
    conditions: list[dict[str, Any]] = [{"source": source}, {"chunk": {"$gte": start}}]
    if not last:
        conditions.append({"chunk": {"$lte": batch[-1].index}})
    stored = writer.store.ids_where({"$and": conditions})
    produced = {chunk.id for chunk in batch}
    stale.extend(stored - produced)
    new = 0
    for chunk in batch:
        if chunk.id in stored:
            writer.advance(chunk.weight)
        else:
            writer.add(chunk)
            new += 1
    return new


def prune_gone(
    store: ChromaRecords, roots: Sequence[str | Path], seen: set[str], report: IngestReport
) -> int:
    """Delete the chunks of files under ``roots`` that this run no longer found."""
    prefixes = [source_name(Path(root).resolve()) for root in roots]
    gone = [
        source
        for source in store.sources()
        if source not in seen
        and any(
            source == prefix or source.startswith(prefix.rstrip(os.sep) + os.sep)
            for prefix in prefixes
        )
    ]
    for source in gone:
        report.chunks_deleted += store.delete(store.ids_where({"source": source}))
        logger.info("pruned %s", source)
    return len(gone)


@dataclass(frozen=True)
class FilePlan:
    """One file's chunks set against what the index already holds for it (for a distributed
    run, which plans whole files in worker tasks)."""

    source: str
    chunks: list[str]
    metadatas: list[dict[str, Scalar]]
    """Each chunk's section or page (besides ``source`` and ``chunk``)."""
    ids: list[str]
    new: list[int]
    """Positions of the chunks not indexed yet."""
    stale: list[str]
    """Ids indexed for this file that it no longer has: deleted once the new ones are written."""
    unreadable: str | None = None
    """Why the file was skipped (then every id indexed for it is stale), None if it was read."""

    @property
    def empty(self) -> bool:
        return not self.chunks

    @property
    def unchanged(self) -> bool:
        return not self.new and not self.stale


def plan_file(path: Path, chunker: Chunker, existing: set[str], ocr: OcrMode = "auto") -> FilePlan:
    """Read and chunk ``path`` part by part, as :func:`ingest` does, so both give the same ids;
    compare them with ``existing``, the ids indexed for it. A file :func:`ingest` would skip as
    unreadable gets a plan with the reason and every existing id stale, as there."""
    source = source_name(path)
    try:
        pieces = list(chunker.split_parts(open_parts(path, ocr=ocr)))
    except UnreadableFileError as error:
        return FilePlan(source, [], [], [], [], sorted(existing), unreadable=str(error))
    ids = [
        chunk_id(source, index, piece.text, piece.metadata) for index, piece in enumerate(pieces)
    ]
    new = [index for index, id_ in enumerate(ids) if id_ not in existing]
    return FilePlan(
        source,
        [piece.text for piece in pieces],
        [piece.metadata for piece in pieces],
        ids,
        new,
        sorted(existing.difference(ids)),
    )
