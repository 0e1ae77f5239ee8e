"""The one owner of a collection's lexical index: keeps it in step with the collection (the
record), searches it, and repairs it.

See :mod:`youtu_rag.index.lexical` for the index itself. Everything else goes through
:class:`LexicalMirror`, whose interface is small on purpose: :meth:`~LexicalMirror.ensure_in_sync`,
:meth:`~LexicalMirror.search`, :meth:`~LexicalMirror.repair`, and the two notices of our own
writes (:meth:`~LexicalMirror.written`, :meth:`~LexicalMirror.deleted`). Nothing is opened until
the index is first needed, so a dense search never touches it.

The index is derived data, so damage is repaired rather than reported: an unreadable manifest,
corrupt or missing tantivy files, or fewer documents in tantivy than the manifest lists make the
owner throw the index's files away and rebuild them from the collection, saying so in a warning.
When that is impossible (the folder is read-only, or a file stands where the folder should be),
:class:`LexicalIndexError` names the problem and the fix; a hybrid search then falls back to the
dense ranking and says so, and a write only warns (the next use catches up by ids).

When another client changed the collection since we last looked: its ``count()`` and newest
id, and for an embedded database the newest write sequence number Chroma keeps for it (every
add, update, upsert and delete takes the next one, so a text replaced in place through
``collection.update`` is noticed too). A Chroma server shows no such number: there every text is
compared with the index once per process, when the index is first opened, and a hit whose text
changed is noticed when it surfaces.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from youtu_rag.index.analyzer import Analyzer, default_analyzer
from youtu_rag.index.lexical import (
    MANIFEST_FILES,
    SEGMENTS_FOLDER,
    LexicalHit,
    LexicalIndex,
    lexical_directory,
    text_hash,
)

__all__ = ["LexicalIndexError", "LexicalMirror", "index_directory"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PAGE = 5000  # records per `get` when reading a whole collection
#: What the index's own code raises on damaged files: tantivy's ValueError ("Data corrupted",
#: "Failed to open file"), SQLite's errors ("file is not a database"), the file system's.
_DAMAGE = (OSError, sqlite3.Error, ValueError)


class LexicalIndexError(RuntimeError):
    """A collection's lexical index cannot be used and could not be rebuilt; the message names
    the problem and the fix. Dense search never needs it."""


class _Damaged(Exception):
    """An index operation failed on the index's own files (not on the collection)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.error = error


@contextlib.contextmanager
def _index_call() -> Iterator[None]:
    """Around calls into the index (never around reads of the collection): its failures become
    :class:`_Damaged`, so a server's failures are never mistaken for damage."""
    try:
        yield
    except _DAMAGE as error:
        raise _Damaged(error) from error


def index_directory(client: ClientAPI, collection: str) -> Path:
    """Where the lexical index of ``collection`` on ``client`` lives (see
    :func:`~youtu_rag.index.lexical.lexical_directory`)."""
    settings = client.get_settings()
    if _is_server(client):
        scheme = "https" if settings.chroma_server_ssl_enabled else "http"
        url = f"{scheme}://{settings.chroma_server_host}:{settings.chroma_server_http_port}"
        return lexical_directory(None, url, collection)
    return lexical_directory(settings.persist_directory, None, collection)


def _is_server(client: ClientAPI) -> bool:
    return "fastapi" in str(client.get_settings().chroma_api_impl).lower()


@dataclass(frozen=True)
class _Signature:
    """What changes when another client writes: size, newest id, and the embedded database's
    newest write sequence number (None for a server)."""

    count: int
    newest: str | None
    sequence: int | None


class LexicalMirror:
    """The lexical index of one open collection; see the module notes. Thread-safe."""

    def __init__(
        self, client: ClientAPI, collection: Collection, analyzer: Analyzer | None = None
    ) -> None:
        """Note where the index lives; nothing is opened or read until it is first needed.

        Args:
            client: the collection's client (it says where the index lives).
            collection: the collection.
            analyzer: text -> terms (default English stemming, CJK bigrams).
        """
        self.collection = collection
        self.directory = index_directory(client, collection.name)
        self.analyzer = analyzer or default_analyzer()
        settings = client.get_settings()
        self._database = (
            None
            if _is_server(client)
            else Path(settings.persist_directory).resolve() / "chroma.sqlite3"
        )
        self._index: LexicalIndex | None = None
        self._seen: _Signature | None = None
        self._lock = threading.RLock()
        self._write_warned = False

    @property
    def index(self) -> LexicalIndex:
        """The index, opened and in step with the collection."""
        self.ensure_in_sync()
        assert self._index is not None
        return self._index

    def close(self) -> None:
        """Release the index's manifest (it stays on disk)."""
        with self._lock:
            if self._index is not None:
                with contextlib.suppress(*_DAMAGE):
                    self._index.close()
            self._index = None

    # --- the narrow interface ------------------------------------------------------------------

    def ensure_in_sync(self, *, compare_texts: bool = False) -> None:
        """Open the index if needed and bring it in step with the collection: by ids when the
        collection changed since we last looked (and every text with ``compare_texts``); damage
        is repaired by a rebuild.

        Raises:
            LexicalIndexError: the index cannot be opened or rebuilt here.
        """
        with self._lock:
            self._repairing(lambda: self._sync(compare_texts=compare_texts))

    def search(self, query: str, limit: int, where: Mapping[str, Any] | None) -> list[LexicalHit]:
        """Up to ``limit`` BM25 hits for ``query`` that the collection holds and ``where`` lets
        through, best first.

        Ids the index has but the collection does not are deleted from the index on the way;
        with a filter, more candidates are taken until ``limit`` pass or none are left.

        Raises:
            LexicalIndexError: the index cannot be opened or rebuilt here.
        """
        with self._lock:
            self._repairing(self._sync)
            return self._repairing(lambda: self._search(query, limit, where))

    def repair(self) -> int:
        """Throw the index's files away and rebuild them from the collection.

        Returns:
            Chunks indexed.

        Raises:
            LexicalIndexError: the folder cannot be cleared or written.
        """
        with self._lock:
            return self._rebuild_files("asked for")

    def written(self, ids: Sequence[str], texts: Sequence[str | None]) -> None:
        """Chunks we just wrote to the collection. Never raises: a write to the collection
        stands whatever the index does, and an index that missed it catches up by ids."""
        self._follow(lambda index: index.apply(zip(ids, (t or "" for t in texts), strict=True)))

    def deleted(self, ids: Sequence[str]) -> None:
        """Ids we just deleted from the collection (never raises, as :meth:`written`)."""
        self._follow(lambda index: index.apply(deletes=ids))

    def refresh_if_changed(self, texts: Mapping[str, str]) -> bool:
        """Whether any of ``texts`` (id -> text read from the collection now) differs from the
        text indexed; if so another client replaced texts in place, and every text of the
        collection is compared and re-indexed, so a search run again finds them all."""
        with self._lock:
            held = self._repairing(lambda: self._hashes(list(texts)))
            if all(held.get(id_, "") == text_hash(text) for id_, text in texts.items()):
                return False
            logger.info("lexical index of %r: texts replaced in place", self.collection.name)
            self.ensure_in_sync(compare_texts=True)
            return True

    # --- keeping in step -----------------------------------------------------------------------

    def _hashes(self, ids: list[str]) -> dict[str, str]:
        index = self._open()
        with _index_call():
            return index.hashes(ids)

    def _open(self) -> LexicalIndex:
        if self._index is None:
            with _index_call():
                self._index = LexicalIndex(self.directory, self.analyzer)
            self._seen = None
        return self._index

    def _sync(self, *, compare_texts: bool = False) -> None:
        opening = self._index is None
        index = self._open()
        signature = self._signature()
        with _index_call():
            held = index.count()
            stale = signature != self._seen or held != signature.count
            valid = not stale or index.is_valid_for(str(self.collection.id))
            kept = index.segments_count()
            synced = index.synced_sequence()
        if valid and kept != held:
            raise _Damaged(ValueError(f"its tantivy files hold {kept} of its {held} chunks"))
        if not valid:
            self._rebuild(index, signature)
            return
        rewritten: list[str] = []
        if signature.sequence is None:
            # A server shows no write sequence: compare every text once, on opening.
            compare_texts = compare_texts or opening
        elif signature.sequence != synced:
            written = self._written_since(synced)
            compare_texts = compare_texts or written is None
            rewritten = written or []
        if stale or compare_texts or rewritten:
            self._reconcile(index, signature, compare_texts=compare_texts, rewritten=rewritten)
        elif synced != signature.sequence:
            with _index_call():
                index.record_sequence(signature.sequence)

    def _reconcile(
        self,
        index: LexicalIndex,
        signature: _Signature,
        *,
        compare_texts: bool,
        rewritten: Sequence[str] = (),
    ) -> None:
        """Apply the difference of ids, and re-index the ``rewritten`` ids (every id whose text
        differs, with ``compare_texts``)."""
        ids = self._collection_ids()
        with _index_call():
            held = index.ids()
        current = set(ids)
        missing = sorted(current - held)
        phantom = sorted(held - current)
        present = current & held
        if compare_texts:
            with _index_call():
                indexed = index.hashes(sorted(present))
            missing += [
                id_
                for id_, text in self._texts(sorted(present))
                if indexed.get(id_) != text_hash(text)
            ]
        else:
            missing += sorted(present.intersection(rewritten))
        if missing or phantom:
            logger.info(
                "lexical index of %r: %d chunks added or re-indexed, %d removed to match the "
                "collection",
                self.collection.name,
                len(missing),
                len(phantom),
            )
            for start in range(0, max(len(missing), 1), _PAGE):
                pairs = list(self._texts(missing[start : start + _PAGE]))
                with _index_call():
                    index.apply(pairs, phantom if start == 0 else ())
        with _index_call():
            index.record_sequence(signature.sequence)
        self._seen = signature

    def _rebuild(self, index: LexicalIndex, signature: _Signature) -> int:
        ids = self._collection_ids()
        logger.info(
            "building the lexical index of %r from its %d chunks", self.collection.name, len(ids)
        )
        with _index_call():
            index.reset()
        for start in range(0, len(ids), _PAGE):
            pairs = list(self._texts(ids[start : start + _PAGE]))
            with _index_call():
                index.apply(pairs)
        with _index_call():
            index.mark_built(str(self.collection.id))
            index.record_sequence(signature.sequence)
        self._seen = signature
        return len(ids)

    def _search(self, query: str, limit: int, where: Mapping[str, Any] | None) -> list[LexicalHit]:
        index = self._open()
        depth = limit
        while True:
            with _index_call():
                found = index.search(query, depth)
                size = index.count()
            if not found:
                return []
            ids = [hit.id for hit in found]
            kept = set(self.collection.get(ids=ids, where=_where(where), include=[])["ids"])
            if len(kept) < len(ids):
                absent = [id_ for id_ in ids if id_ not in kept]
                if where is not None:
                    absent = sorted(
                        set(absent) - set(self.collection.get(ids=absent, include=[])["ids"])
                    )
                if absent:
                    logger.info("lexical index: %d ids gone from the collection", len(absent))
                    with _index_call():
                        index.apply(deletes=absent)
            hits = [hit for hit in found if hit.id in kept]
            if len(hits) >= limit or len(found) < depth or depth >= size:
                return hits[:limit]
            depth *= 4

    def _follow(self, change: Callable[[LexicalIndex], None]) -> None:
        """Apply one of our writes (an index opened now catches up by ids, this write
        included). A failure is a warning, once: the next use catches up by ids."""
        with self._lock:
            try:
                if self._index is None:
                    self._repairing(self._sync)
                    return
                with _index_call():
                    change(self._index)
                    self._seen = self._signature()
                    self._index.record_sequence(self._seen.sequence)
            except (_Damaged, LexicalIndexError) as problem:
                if not self._write_warned:
                    self._write_warned = True
                    logger.warning(
                        "the lexical index of collection %r missed a write (%s); it catches up "
                        "when next used",
                        self.collection.name,
                        problem,
                    )
                self.close()

    # --- repair --------------------------------------------------------------------------------

    def _repairing(self, action: Callable[[], T]) -> T:
        """Run ``action``; if the index's files fail it, rebuild them from the collection and
        run it again."""
        try:
            return action()
        except _Damaged as damage:
            self._rebuild_files(f"damaged: {damage}")
        try:
            return action()
        except _Damaged as damage:
            raise self._error(damage) from damage.error

    def _rebuild_files(self, why: str) -> int:
        self.close()
        try:
            with _index_call():
                _remove_index_files(self.directory)
            index = self._open()
            indexed = self._rebuild(index, self._signature())
        except _Damaged as damage:
            self.close()
            raise self._error(damage) from damage.error
        logger.warning(
            "the lexical index of collection %r was %s; rebuilt from the collection (%d chunks)",
            self.collection.name,
            why,
            indexed,
        )
        return indexed

    def _error(self, damage: _Damaged) -> LexicalIndexError:
        code = getattr(damage.error, "errno", None)
        if code in (errno.EEXIST, errno.ENOTDIR) or (
            self.directory.exists() and not self.directory.is_dir()
        ):
            fix = f"{self.directory} is not a folder: move it away and search again"
        elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = f"make {self.directory} writable for this user, or remove it"
        else:
            fix = f"remove {self.directory}; it is rebuilt from the collection"
        return LexicalIndexError(
            f"the lexical index of collection {self.collection.name!r} is damaged and could not "
            f"be rebuilt ({damage}): {fix}"
        )

    # --- reading the collection ----------------------------------------------------------------

    def _collection_ids(self) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            page = self.collection.get(include=[], limit=_PAGE, offset=offset)
            ids += page["ids"]
            if len(page["ids"]) < _PAGE:
                return ids
            offset += _PAGE

    def _signature(self) -> _Signature:
        count = self.collection.count()
        newest = None
        if count:
            found = self.collection.get(limit=1, offset=count - 1, include=[])["ids"]
            newest = found[0] if found else None
        return _Signature(count, newest, self._write_sequence())

    def _write_sequence(self) -> int | None:
        """Chroma's newest write sequence number for this collection in an embedded database;
        None for a server, or a database laid out otherwise than Chroma 1.x does."""
        rows = self._chroma_rows(
            "SELECT max(m.seq_id) FROM max_seq_id m JOIN segments s ON s.id = m.segment_id "
            "WHERE s.collection = ?"
        )
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def _written_since(self, sequence: int | None) -> list[str] | None:
        """Ids of the records an embedded database wrote after ``sequence`` (adds, updates,
        upserts); None when that cannot be told (no sequence yet, a server, another layout)."""
        if sequence is None:
            return None
        rows = self._chroma_rows(
            "SELECT e.embedding_id FROM embeddings e JOIN segments s ON s.id = e.segment_id "
            "WHERE s.collection = ? AND e.seq_id > ?",
            sequence,
        )
        return None if rows is None else [str(row[0]) for row in rows]

    def _chroma_rows(self, query: str, *parameters: int) -> list[tuple[Any, ...]] | None:
        """Rows of ``query`` (on this collection's id, then ``parameters``) read from the
        embedded database, read-only; None for a server or a layout the query does not fit."""
        if self._database is None:
            return None
        try:
            with contextlib.closing(
                sqlite3.connect(f"{self._database.as_uri()}?mode=ro", uri=True)
            ) as database:
                return database.execute(query, (str(self.collection.id), *parameters)).fetchall()
        except sqlite3.Error:
            return None

    def _texts(self, ids: Sequence[str]) -> Iterator[tuple[str, str]]:
        for start in range(0, len(ids), _PAGE):
            page = self.collection.get(ids=list(ids[start : start + _PAGE]), include=["documents"])
            documents: list[str | None] = [None] * len(page["ids"])
            if page["documents"] is not None:
                documents = list(page["documents"])
            for id_, document in zip(page["ids"], documents, strict=True):
                yield id_, document or ""


def _remove_index_files(directory: Path) -> None:
    """Delete what :class:`LexicalIndex` keeps in ``directory`` (only that: the folder is ours,
    but anything else in it is not)."""
    import shutil

    if directory.exists() and not directory.is_dir():
        raise FileExistsError(errno.EEXIST, "a file stands where the folder should be", directory)
    for name in MANIFEST_FILES:
        (directory / name).unlink(missing_ok=True)
    if (directory / SEGMENTS_FOLDER).is_dir():
        shutil.rmtree(directory / SEGMENTS_FOLDER)


def _where(where: Mapping[str, Any] | None) -> Any:
    return None if where is None else dict(where)
