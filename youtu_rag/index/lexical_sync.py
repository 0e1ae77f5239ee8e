"""A collection's lexical index held in step with the collection (the record).

See :mod:`youtu_rag.index.lexical` for when the two are compared. This module does the
comparing: it reads ids and texts from Chroma and applies the difference to the index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from youtu_rag.index.analyzer import Analyzer
from youtu_rag.index.lexical import LexicalHit, LexicalIndex, lexical_directory, text_hash

__all__ = ["LexicalMirror", "index_directory"]

logger = logging.getLogger(__name__)

_PAGE = 5000  # records per `get` when reading a whole collection


def index_directory(client: ClientAPI, collection: str) -> Path:
    """Where the lexical index of ``collection`` on ``client`` lives (see
    :func:`~youtu_rag.index.lexical.lexical_directory`)."""
    settings = client.get_settings()
    if "fastapi" in str(settings.chroma_api_impl).lower():
        scheme = "https" if settings.chroma_server_ssl_enabled else "http"
        url = f"{scheme}://{settings.chroma_server_host}:{settings.chroma_server_http_port}"
        return lexical_directory(None, url, collection)
    return lexical_directory(settings.persist_directory, None, collection)


class LexicalMirror:
    """The lexical index of one open collection, reconciled with it on demand."""

    def __init__(
        self, client: ClientAPI, collection: Collection, analyzer: Analyzer | None = None
    ) -> None:
        """Open the index and bring it in step with the collection.

        Args:
            client: the collection's client (it says where the index lives).
            collection: the collection.
            analyzer: text -> terms (default English stemming, CJK bigrams).
        """
        self.collection = collection
        self.index = LexicalIndex(index_directory(client, collection.name), analyzer)
        self._seen: tuple[int, str | None] | None = None
        self.reconcile()

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

    def _signature(self, count: int) -> tuple[int, str | None]:
        """The collection's size and the id of its newest record: a record added by another
        client changes the newest id even when it also deleted one (the size stays)."""
        if not count:
            return 0, None
        newest = self.collection.get(limit=1, offset=count - 1, include=[])["ids"]
        return count, newest[0] if newest else None

    def _texts(self, ids: Sequence[str]) -> Iterator[tuple[str, str]]:
        for start in range(0, len(ids), _PAGE):
            page = self.collection.get(ids=list(ids[start : start + _PAGE]), include=["documents"])
            documents: list[str | None] = [None] * len(page["ids"])
            if page["documents"] is not None:
                documents = list(page["documents"])
            for id_, document in zip(page["ids"], documents, strict=True):
                yield id_, document or ""

    # --- keeping in step -----------------------------------------------------------------------

    def reconcile(self, *, compare_texts: bool = False) -> None:
        """Compare the collection's ids with the index's and apply the difference; rebuild the
        index if it was built for another collection or analyzer or a change was cut short.

        Args:
            compare_texts: also read every text and re-index those replaced under the same id
                by another client (a full read of the collection; ids alone are cheap).
        """
        collection_id = str(self.collection.id)
        ids = self._collection_ids()
        self._seen = self._signature(len(ids))
        if not self.index.is_valid_for(collection_id):
            logger.info(
                "building the lexical index of %r from its %d chunks",
                self.collection.name,
                len(ids),
            )
            self.index.rebuild(collection_id, self._texts(ids))
            return
        current = set(ids)
        held = self.index.ids()
        missing = sorted(current - held)
        phantom = sorted(held - current)
        if compare_texts:
            present = sorted(current & held)
            indexed = self.index.hashes(present)
            missing += [
                id_ for id_, text in self._texts(present) if indexed.get(id_) != text_hash(text)
            ]
        if missing or phantom:
            logger.info(
                "lexical index of %r: %d chunks added, %d removed to match the collection",
                self.collection.name,
                len(missing),
                len(phantom),
            )
            self.index.apply(self._texts(missing), phantom)

    def check(self, count: int) -> None:
        """Reconcile if another client wrote since we last looked: the collection's size or
        newest record changed, or the index's size differs; ``count`` is its ``count()``."""
        if (
            count != self.index.count()
            or self._signature(count) != self._seen
            or not self.index.is_valid_for(str(self.collection.id))
        ):
            self.reconcile()

    def written(self, ids: Sequence[str], texts: Sequence[str | None]) -> None:
        """Chunks we just wrote to the collection."""
        self.index.apply(zip(ids, (text or "" for text in texts), strict=True))
        self._seen = self._signature(self.collection.count())

    def deleted(self, ids: Sequence[str]) -> None:
        """Ids we just deleted from the collection."""
        self.index.apply(deletes=ids)
        self._seen = self._signature(self.collection.count())

    # --- searching -----------------------------------------------------------------------------

    def search(
        self, query: str, limit: int, where: Mapping[str, Any] | None, count: int
    ) -> list[LexicalHit]:
        """Up to ``limit`` BM25 hits for ``query`` that the collection holds and ``where`` lets
        through, best first.

        Ids the index has but the collection does not are deleted from the index on the way;
        with a filter, more candidates are taken until ``limit`` pass or none are left.

        Args:
            query: the search text.
            limit: hits wanted.
            where: a Chroma metadata filter.
            count: the collection's ``count()``, taken just before.

        Returns:
            The hits.
        """
        self.check(count)
        depth = limit
        while True:
            found = self.index.search(query, depth)
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
                    self.index.apply(deletes=absent)
            hits = [hit for hit in found if hit.id in kept]
            if len(hits) >= limit or len(found) < depth or depth >= self.index.count():
                return hits[:limit]
            depth *= 4

    def refresh_if_changed(self, texts: Mapping[str, str]) -> bool:
        """Re-index the chunks among ``texts`` (id -> text read from the collection now) whose
        text differs from the one indexed; whether any did."""
        held = self.index.hashes(list(texts))
        changed = [
            (id_, text) for id_, text in texts.items() if held.get(id_, "") != text_hash(text)
        ]
        if changed:
            logger.info("lexical index: %d chunks replaced by another client", len(changed))
            self.index.apply(changed)
        return bool(changed)


def _where(where: Mapping[str, Any] | None) -> Any:
    return None if where is None else dict(where)
