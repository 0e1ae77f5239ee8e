"""Move a Chroma collection made by any embedding function into a youtu-rag collection: the same
ids, texts and metadata, new vectors.

Chroma refuses to reopen a collection with another embedding function ("Embedding function
conflict"), and its vectors mean nothing to another model, so the texts are read back and
embedded again. The source is only read. A run that stops part way (Ctrl-C, a crash) resumes
where it left off: records already in the target with the same text are not embedded again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from chromadb.api.models.Collection import Collection
from tqdm.auto import tqdm

from youtu_rag.index.store import ChromaStore, server_errors

#: Records read from the source and embedded per step.
DEFAULT_PAGE_SIZE = 256


@dataclass
class ReembedReport:
    """What a run did."""

    source: str
    target: str
    copied: int = 0
    """Records embedded and written to the target."""
    already_there: int = 0
    """Records the target held with the same text (an earlier run's)."""
    without_text: int = 0
    """Records with no text (vectors only, or whitespace): they cannot be embedded again."""
    interrupted: bool = False
    total: int = 0
    """Records in the target at the end."""


def reembed(
    source: Collection,
    target: ChromaStore,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    show_progress: bool = False,
    stop: threading.Event | None = None,
) -> ReembedReport:
    """Copy ``source``'s ids, texts and metadata into ``target``, embedded by its embedder.

    Args:
        source: any Chroma collection (from any client, local or server); only read.
        target: the youtu-rag collection to fill (made with ``create=True``).
        page_size: records per step.
        show_progress: a progress bar over the source's records.
        stop: set it to stop after the current step (what was written stays).

    Returns:
        The counts; the lexical index of the target is brought up to date at the end.

    Raises:
        ValueError: the source and the target are one collection, or a page size below 1.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    if source.id == target.collection.id:
        raise ValueError(f"collection {source.name!r} cannot be re-embedded into itself")
    report = ReembedReport(source=source.name, target=target.name)
    count = source.count()
    with tqdm(total=count, unit="record", desc="Re-embedding", disable=not show_progress) as bar:
        for offset in range(0, count, page_size):
            if stop is not None and stop.is_set():
                report.interrupted = True
                break
            page = source.get(limit=page_size, offset=offset, include=["documents", "metadatas"])
            _copy_page(page, target, report)
            bar.update(len(page["ids"]))
    target.sync_lexical()
    report.total = target.count()
    return report


def _copy_page(page: Any, target: ChromaStore, report: ReembedReport) -> None:
    ids: list[str] = list(page["ids"])
    texts: list[str | None] = list(page["documents"] or [None] * len(ids))
    metadatas: list[Any] = list(page["metadatas"] or [None] * len(ids))
    with server_errors(target.client):
        present = target.collection.get(ids=ids, include=["documents"])
    held = dict(zip(present["ids"], present["documents"] or [], strict=False))
    wanted = []
    for index, (record_id, text) in enumerate(zip(ids, texts, strict=True)):
        if text is None or not text.strip():
            report.without_text += 1
        elif held.get(record_id) == text:
            report.already_there += 1
        else:
            wanted.append(index)
    if not wanted:
        return
    chosen_texts = [str(texts[i]) for i in wanted]
    target.write(
        [ids[i] for i in wanted],
        chosen_texts,
        [metadatas[i] or None for i in wanted],
        target.embedder.encode_documents(chosen_texts),
    )
    report.copied += len(wanted)
