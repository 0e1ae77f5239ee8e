"""A BM25 index of one collection's chunk texts, derived from the collection and kept in step.

Chroma stays the record: it holds every chunk's text, so this index can always be rebuilt from it.
The index is tantivy's (on-disk segments, atomic commits, delete by id, BM25 with k1 1.2 and
b 0.75) over the terms of :mod:`youtu_rag.index.analyzer`. Tantivy was chosen over bm25s because
a collection changes a file at a time: tantivy adds and deletes chunks by id in place, where
bm25s rebuilds its matrices from the whole corpus on every change.

Beside the tantivy segments lives a manifest (SQLite): the collection's id (a collection deleted
and made again under the same name is another one), the analyzer, and for each chunk indexed its
id and a hash of its text. Every change is marked in the manifest before tantivy commits and
cleared after both have committed, so a process killed in between (``kill -9`` mid-``index``)
leaves a mark the next opening sees: the index is rebuilt from the collection.

When the index is compared with the collection, and how damage is repaired, is the business of
its one owner, :class:`~youtu_rag.index.lexical_sync.LexicalMirror`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import tantivy
from filelock import FileLock

from youtu_rag.index.analyzer import Analyzer, default_analyzer

__all__ = [
    "CACHE_DIR_ENV",
    "MANIFEST_FILES",
    "SEGMENTS_FOLDER",
    "LexicalHit",
    "LexicalIndex",
    "lexical_directory",
    "text_hash",
]

logger = logging.getLogger(__name__)

#: Environment variable naming where the lexical indexes of server collections are kept
#: (default ``~/.cache/youtu-rag``; each goes in ``lexical/<host>_<port>/<collection>``).
CACHE_DIR_ENV = "YOUTU_RAG_CACHE_DIR"
_MANIFEST = "manifest.sqlite3"
#: The files and the folder the index keeps in its directory: all a repair removes.
MANIFEST_FILES = tuple(_MANIFEST + end for end in ("", "-journal", "-wal", "-shm"))
SEGMENTS_FOLDER = _SEGMENTS = "tantivy"
_LOCK = "write.lock"
_ID = "id"
_TERMS = "terms"
_WRITER_HEAP = 64_000_000
_BATCH = 1000


@dataclass(frozen=True)
class LexicalHit:
    """A chunk the index ranks for a query: its id, BM25 score and the hash of its text."""

    id: str
    score: float
    text_hash: str


def text_hash(text: str) -> str:
    """What the manifest keeps of a chunk's text to notice a replacement under the same id."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def lexical_directory(
    persist_dir: str | os.PathLike[str] | None, url: str | None, collection: str
) -> Path:
    """Where a collection's lexical index lives.

    Beside an embedded database: ``<persist_dir>/lexical/<collection>``. For a server, a local
    cache: ``$YOUTU_RAG_CACHE_DIR/lexical/<host>_<port>/<collection>`` (default cache
    ``~/.cache/youtu-rag``).

    Args:
        persist_dir: the embedded database directory, or None for a server.
        url: the server URL, or None.
        collection: the collection name.

    Returns:
        The directory (not created).
    """
    if url is None:
        if persist_dir is None:
            raise ValueError("a lexical index needs the database directory or the server URL")
        return Path(persist_dir) / "lexical" / collection
    parts = urlsplit(url)
    server = f"{parts.hostname}_{parts.port or (443 if parts.scheme == 'https' else 8000)}"
    cache = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "youtu-rag"
    return Path(cache) / "lexical" / server / collection


class LexicalIndex:
    """The BM25 index of one collection, in one directory; see the module notes."""

    def __init__(self, directory: str | os.PathLike[str], analyzer: Analyzer | None = None) -> None:
        """Open the index in ``directory``, creating an empty one if there is none.

        Args:
            directory: where the segments and the manifest go.
            analyzer: text -> terms (default: :func:`~youtu_rag.index.analyzer.default_analyzer`).
        """
        self.directory = Path(directory)
        self.analyzer = analyzer or default_analyzer()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.directory / _LOCK))
        self._guard = threading.RLock()  # one manifest connection, shared by this process's threads
        builder = tantivy.SchemaBuilder()
        builder.add_text_field(_ID, stored=True, tokenizer_name="raw", index_option="basic")
        builder.add_text_field(
            _TERMS, stored=False, tokenizer_name="whitespace", index_option="freq"
        )
        self._schema = builder.build()
        self._index = self._open_segments()
        self._manifest = sqlite3.connect(
            self.directory / _MANIFEST, isolation_level=None, check_same_thread=False
        )
        self._manifest.executescript(
            "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS chunks (id TEXT PRIMARY KEY, hash TEXT NOT NULL);"
        )

    def _open_segments(self) -> tantivy.Index:
        path = self.directory / _SEGMENTS
        path.mkdir(exist_ok=True)
        return tantivy.Index(self._schema, path=str(path), reuse=True)

    def close(self) -> None:
        """Release the manifest; the index stays on disk."""
        self._manifest.close()

    # --- the manifest --------------------------------------------------------------------------

    def _state(self, key: str) -> str | None:
        row = self._manifest.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_state(self, key: str, value: str) -> None:
        self._manifest.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def count(self) -> int:
        """Chunks the manifest says the index holds."""
        with self._guard:
            return int(self._manifest.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def ids(self) -> set[str]:
        """Ids of the chunks indexed."""
        with self._guard:
            return {str(row[0]) for row in self._manifest.execute("SELECT id FROM chunks")}

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """The indexed text hash of each of ``ids`` that the index holds."""
        found: dict[str, str] = {}
        with self._guard:
            self._read_hashes(ids, found)
        return found

    def _read_hashes(self, ids: Sequence[str], found: dict[str, str]) -> None:
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            for id_, digest in self._manifest.execute(
                f"SELECT id, hash FROM chunks WHERE id IN ({marks})", part
            ):
                found[str(id_)] = str(digest)

    def is_valid_for(self, collection_id: str) -> bool:
        """Whether the index was built for this collection with this analyzer, and no change
        was left half-applied."""
        with self._guard:
            return self._valid_for(collection_id)

    def _valid_for(self, collection_id: str) -> bool:
        return (
            self._state("dirty") == "0"
            and self._state("collection") == collection_id
            and self._state("analyzer") == self.analyzer.name()
        )

    def synced_sequence(self) -> int | None:
        """The collection's write sequence number (see
        :mod:`~youtu_rag.index.lexical_sync`) this index was last brought in step with."""
        with self._guard:
            value = self._state("sequence")
        return int(value) if value else None

    def record_sequence(self, sequence: int | None) -> None:
        """Record that the index is in step with the collection as of ``sequence``."""
        with self._guard:
            self._set_state("sequence", "" if sequence is None else str(sequence))

    def segments_count(self) -> int:
        """Chunks tantivy holds: fewer than :meth:`count` when files under the index were
        deleted or lost (``tantivy/``, its ``meta.json``), though the manifest says clean."""
        with self._guard:
            self._index.reload()
            return int(self._index.searcher().num_docs)

    # --- writing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self) -> Iterator[tantivy.IndexWriter]:
        """A writer whose changes are committed with the manifest's, the index marked dirty in
        between (one writer at a time, across processes)."""
        with self._guard, self._lock:
            self._set_state("dirty", "1")
            writer = self._index.writer(_WRITER_HEAP, 1)
            try:
                self._manifest.execute("BEGIN")
                yield writer
                writer.commit()
                writer.wait_merging_threads()
                self._set_state("dirty", "0")
                self._manifest.execute("COMMIT")
            except BaseException:
                if self._manifest.in_transaction:
                    self._manifest.execute("ROLLBACK")
                raise
        self._index.reload()

    def apply(self, upserts: Iterable[tuple[str, str]] = (), deletes: Iterable[str] = ()) -> None:
        """Index ``(id, text)`` pairs (replacing any chunk of the same id) and delete ids.

        Args:
            upserts: chunks written to the collection.
            deletes: ids deleted from it.
        """
        pairs = list(upserts)
        gone = list(deletes)
        if not pairs and not gone:
            return
        with self._changing() as writer:
            self._write(writer, pairs, gone)

    def _write(
        self, writer: tantivy.IndexWriter, pairs: Sequence[tuple[str, str]], gone: Sequence[str]
    ) -> None:
        for id_ in gone:
            writer.delete_documents_by_term(_ID, id_)
        self._manifest.executemany("DELETE FROM chunks WHERE id = ?", [(id_,) for id_ in gone])
        for id_, text in pairs:
            writer.delete_documents_by_term(_ID, id_)
            document = tantivy.Document()
            document.add_text(_ID, id_)
            document.add_text(_TERMS, " ".join(self.analyzer.terms(text)))
            writer.add_document(document)
        self._manifest.executemany(
            "INSERT INTO chunks (id, hash) VALUES (?, ?) "
            "ON CONFLICT(id) DO UPDATE SET hash = excluded.hash",
            [(id_, text_hash(text)) for id_, text in pairs],
        )

    def reset(self) -> None:
        """Empty the index and forget which collection it was built for, until
        :meth:`mark_built`: a rebuild cut short is noticed and started again."""
        with self._guard, self._lock:
            self._set_state("dirty", "1")
            self._set_state("collection", "")
            shutil.rmtree(self.directory / _SEGMENTS, ignore_errors=True)
            self._index = self._open_segments()
            self._manifest.execute("DELETE FROM chunks")
            self._set_state("dirty", "0")

    def mark_built(self, collection_id: str) -> None:
        """Record that the index now holds all of ``collection_id``'s chunks, under this
        analyzer."""
        with self._guard, self._lock:
            self._set_state("collection", collection_id)
            self._set_state("analyzer", self.analyzer.name())

    def rebuild(self, collection_id: str, chunks: Iterable[tuple[str, str]]) -> int:
        """Throw the index away and index ``chunks``, the collection's every ``(id, text)``.

        Args:
            collection_id: the collection's id, recorded so another collection is noticed.
            chunks: all of its chunks.

        Returns:
            Chunks indexed.
        """
        self.reset()
        indexed = 0
        with self._changing() as writer:  # one commit: a cut-short rebuild stays marked dirty
            batch: list[tuple[str, str]] = []
            for pair in chunks:
                batch.append(pair)
                if len(batch) >= _BATCH:
                    self._write(writer, batch, ())
                    indexed += len(batch)
                    batch = []
            self._write(writer, batch, ())
            indexed += len(batch)
        self.mark_built(collection_id)
        return indexed

    # --- searching -----------------------------------------------------------------------------

    def search(self, query: str, limit: int) -> list[LexicalHit]:
        """The ``limit`` chunks with the best BM25 score for ``query``'s terms, best first.

        Args:
            query: the search text.
            limit: most hits.

        Returns:
            Hits; none when the query has no term the analyzer keeps.
        """
        terms = self.analyzer.terms(query)
        if not terms or limit < 1:
            return []
        query_object = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, _TERMS, term))
                for term in terms
            ]
        )
        self._index.reload()  # see commits made by other processes (another `index` run)
        searcher = self._index.searcher()
        found = searcher.search(query_object, limit=limit, count=False).hits
        ids = [str(searcher.doc(address)[_ID][0]) for _, address in found]
        hashes = self.hashes(ids)
        return [
            LexicalHit(id_, float(score), hashes.get(id_, ""))
            for (score, _), id_ in zip(found, ids, strict=True)
        ]

    def size_bytes(self) -> int:
        """Bytes on disk: segments and manifest."""
        return sum(path.stat().st_size for path in self.directory.rglob("*") if path.is_file())
