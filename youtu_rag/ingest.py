"""Files and folders -> chunks sized in the model's own tokens -> stable ids -> batched upserts.

An id is a function of (source path, chunk index, chunk text), so a re-run recognises what is
already indexed and embeds only what changed. For each changed file the new chunks are written
before the stale ones are deleted: a run killed at any point leaves duplicates of nothing and
loses nothing, and the next run finishes the job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter, TextSplitter
from tqdm.auto import tqdm

from youtu_rag.backends import Embedder
from youtu_rag.embedder import YoutuEmbedder
from youtu_rag.store import ChromaRecords, ChromaStore

logger = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"}) | MARKDOWN_SUFFIXES
PDF_SUFFIX = ".pdf"
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {PDF_SUFFIX}
#: Chunk size when none is given, capped by the model's limit (a few paragraphs: precise enough
#: to cite, long enough to stand alone in a prompt).
DEFAULT_CHUNK_TOKENS = 512
#: The same for an API model, whose limit is in characters (2000 characters: ~500 English tokens).
DEFAULT_CHUNK_CHARACTERS = 2000
#: Chunks embedded and written together.
DEFAULT_BATCH_SIZE = 256


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


def find_files(paths: Iterable[str | Path]) -> list[Path]:
    """Supported files among ``paths`` and, recursively, inside the folders among them.

    Hidden files and folders (``.git``, ``.youtu_rag``, ...) are skipped when walking a folder.

    Args:
        paths: files and folders.

    Returns:
        The files, resolved, each once, in a stable order.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a named file is of an unsupported type.
    """
    found: dict[Path, None] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in candidate.relative_to(path).parts)
                if (
                    not hidden
                    and candidate.is_file()
                    and candidate.suffix.lower() in SUPPORTED_SUFFIXES
                ):
                    found[candidate.resolve()] = None
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise ValueError(
                    f"{path}: unsupported file type; use one of {sorted(SUPPORTED_SUFFIXES)}"
                )
            found[path.resolve()] = None
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(found)


def read_text(path: Path) -> str:
    """The text of a ``.txt``/``.md`` file (UTF-8) or of a PDF's pages.

    Args:
        path: the file.

    Returns:
        Its text; undecodable bytes are replaced.

    Raises:
        ImportError: a PDF without ``pypdf`` installed.
    """
    if path.suffix.lower() != PDF_SUFFIX:
        return path.read_text(encoding="utf-8", errors="replace")
    try:
        from pypdf import PdfReader
    except ImportError as error:
        raise ImportError(
            f"{path}: reading PDF needs pypdf; pip install 'youtu-rag[pdf]'"
        ) from error
    return "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def chunk_limit(embedder: Embedder) -> int:
    """The most tokens a chunk may have so that prefix, special tokens and chunk fit the model.

    An API model without a local tokenizer counts characters, up to its own limit.

    Args:
        embedder: the embedder the chunks are for.

    Returns:
        The limit in tokens (characters for an API model).
    """
    if not isinstance(embedder, YoutuEmbedder):
        return embedder.max_length
    tokenizer = embedder.backbone.tokenizer
    overhead = len(tokenizer(embedder.document_prefix, add_special_tokens=True)["input_ids"])
    # One token of slack: a chunk tokenized after the prefix may merge differently at the seam.
    return embedder.max_length - overhead - 1


def make_splitter(
    embedder: Embedder,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    *,
    markdown: bool = False,
) -> TextSplitter:
    """A recursive splitter measuring chunks with the embedder's own tokenizer (in characters
    for an API model).

    Args:
        embedder: its tokenizer measures the chunks.
        chunk_size: tokens per chunk (default :data:`DEFAULT_CHUNK_TOKENS`, or
            :data:`DEFAULT_CHUNK_CHARACTERS` for an API model; the model's limit if lower).
        chunk_overlap: tokens shared by neighbours (default an eighth of the size).
        markdown: split on Markdown structure first.

    Returns:
        The splitter.

    Raises:
        ValueError: a size above the model's limit (the tail of such chunks would be truncated
            away and never found), or an overlap not below the size.
    """
    limit = chunk_limit(embedder)
    local = isinstance(embedder, YoutuEmbedder)
    default = DEFAULT_CHUNK_TOKENS if local else DEFAULT_CHUNK_CHARACTERS
    size = min(default, limit) if chunk_size is None else chunk_size
    if not 1 <= size <= limit:
        unit = "tokens" if local else "characters"
        raise ValueError(
            f"chunk size must be between 1 and {limit} {unit} for {embedder.model_name} "
            f"(max length {embedder.max_length}), got {size}"
        )
    overlap = size // 8 if chunk_overlap is None else chunk_overlap
    if not 0 <= overlap < size:
        raise ValueError(f"chunk overlap must be at least 0 and below {size}, got {overlap}")
    separators = (
        RecursiveCharacterTextSplitter.get_separators_for_language(Language.MARKDOWN)
        if markdown
        else None
    )
    if not isinstance(embedder, YoutuEmbedder):
        return RecursiveCharacterTextSplitter(
            chunk_size=size, chunk_overlap=overlap, separators=separators
        )
    return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        embedder.backbone.tokenizer,
        chunk_size=size,
        chunk_overlap=overlap,
        separators=separators,
    )


def chunk_id(source: str, index: int, text: str) -> str:
    """Stable id of a chunk, so that re-indexing unchanged text writes nothing.

    Args:
        source: the file's path.
        index: the chunk's position in the file.
        text: its content.

    Returns:
        ``{path hash}-{index}-{text hash}``.
    """
    path_hash = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    text_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"{path_hash}-{index}-{text_hash}"


def make_splitters(
    embedder: Embedder, chunk_size: int | None = None, chunk_overlap: int | None = None
) -> dict[bool, TextSplitter]:
    """The plain-text and the markdown splitter (keyed by "is markdown"), see
    :func:`make_splitter`."""
    return {
        markdown: make_splitter(embedder, chunk_size, chunk_overlap, markdown=markdown)
        for markdown in (False, True)
    }


@dataclass(frozen=True)
class FilePlan:
    """One file's chunks set against what the index already holds for it."""

    source: str
    chunks: list[str]
    ids: list[str]
    new: list[int]
    """Positions of the chunks not indexed yet."""
    stale: list[str]
    """Ids indexed for this file that it no longer has: deleted once the new ones are written."""

    @property
    def empty(self) -> bool:
        return not self.chunks

    @property
    def unchanged(self) -> bool:
        return not self.new and not self.stale


def plan_file(path: Path, splitters: Mapping[bool, TextSplitter], existing: set[str]) -> FilePlan:
    """Read and chunk ``path``; compare its chunk ids with ``existing``, the ids indexed for it.

    Local :func:`ingest` and the distributed index call this same function, so both agree on
    every id.
    """
    source = str(path)
    text = read_text(path)
    splitter = splitters[path.suffix.lower() in MARKDOWN_SUFFIXES]
    chunks = [chunk for chunk in splitter.split_text(text) if chunk.strip()] if text.strip() else []
    ids = [chunk_id(source, index, chunk) for index, chunk in enumerate(chunks)]
    new = [index for index, id_ in enumerate(ids) if id_ not in existing]
    return FilePlan(source, chunks, ids, new, sorted(existing.difference(ids)))


@dataclass
class _Pending:
    """Chunks waiting to be embedded and written, and the stale ids to delete afterwards."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadatas: list[dict[str, str | int]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def ingest(
    store: ChromaStore,
    paths: Sequence[str | Path],
    *,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    prune: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool = False,
) -> IngestReport:
    """Index the supported files under ``paths`` into ``store``; safe to re-run at any time.

    Unchanged files cost a tokenization and one lookup; a changed file's old chunks are deleted
    once its new ones are written; empty files are skipped (their old chunks removed).

    Args:
        store: the collection and its embedder.
        paths: files and folders.
        chunk_size: tokens per chunk (see :func:`make_splitter`).
        chunk_overlap: tokens shared by neighbouring chunks.
        prune: also remove chunks of files that were under ``paths`` but are gone.
        batch_size: chunks embedded and written together.
        show_progress: show a progress bar.

    Returns:
        What the run found and did.

    Raises:
        ValueError: a batch size below 1, or a chunk size the model cannot take.
        FileNotFoundError: a path does not exist.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    files = find_files(paths)
    embedder = store.embedder
    splitters = make_splitters(embedder, chunk_size, chunk_overlap)
    batch_size = min(batch_size, store.client.get_max_batch_size())
    report = IngestReport(files=len(files))
    pending = _Pending()

    for path in tqdm(files, desc="Indexing", unit="file", disable=not show_progress):
        plan = plan_file(path, splitters, store.ids_where({"source": str(path)}))
        if plan.empty:
            report.empty += 1
            logger.info("%s is empty; skipped", plan.source)
            pending.stale.extend(plan.stale)
            continue
        if plan.unchanged:
            report.unchanged += 1
            continue
        report.changed += 1
        for index in plan.new:
            pending.ids.append(plan.ids[index])
            pending.texts.append(plan.chunks[index])
            pending.metadatas.append({"source": plan.source, "chunk": index})
        pending.stale.extend(plan.stale)
        if len(pending.ids) >= batch_size:
            _flush(store, pending, report)
            pending = _Pending()
    _flush(store, pending, report)

    if prune:
        report.pruned_files = prune_gone(store, paths, {str(path) for path in files}, report)
    report.total_chunks = store.count()
    return report


def _flush(store: ChromaStore, pending: _Pending, report: IngestReport) -> None:
    """Write the pending chunks, then delete what they replace: never the other way round."""
    if pending.ids:
        report.chunks_written += store.upsert(pending.ids, pending.texts, pending.metadatas)
        logger.info("wrote %d chunks", len(pending.ids))
    if pending.stale:
        report.chunks_deleted += store.delete(pending.stale)
        logger.info("deleted %d replaced chunks", len(pending.stale))


def prune_gone(
    store: ChromaRecords, paths: Sequence[str | Path], seen: set[str], report: IngestReport
) -> int:
    """Delete the chunks of files under ``paths`` that this run no longer found."""
    roots = [Path(path).resolve() for path in paths]
    gone = [
        source
        for source in store.sources()
        if source not in seen
        and any(Path(source) == root or root in Path(source).parents for root in roots)
    ]
    for source in gone:
        report.chunks_deleted += store.delete(store.ids_where({"source": source}))
        logger.info("pruned %s", source)
    return len(gone)
