"""Chroma as the index: one client (a local directory or a server URL) and a guarded collection.

A collection records the embedder that filled it (model, dimension, prefixes, pooling) in its
metadata. Vectors of two models in one index rank nonsense without raising anything, so opening
a collection with any other embedder is refused, naming both. Whoever can write to the database
or server can also write that record and the stored embedding-function config, so neither is
ever used to decide what code runs: a stored config asking for remote model code is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import chromadb
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Embeddable, EmbeddingFunction, Include
from chromadb.errors import AuthorizationError, ChromaAuthError, NotFoundError
from chromadb.utils.batch_utils import create_batches

from youtu_rag.backends.destinations import (
    check_destination,
    remember_destination,
    stored_destination,
)
from youtu_rag.backends.http import HttpEmbedder
from youtu_rag.backends.protocol import Embedder, is_local_embedder, is_remote
from youtu_rag.index.analyzer import Analyzer
from youtu_rag.index.chroma_function import YoutuEmbeddingFunction, check_stored_config
from youtu_rag.index.defaults import DEFAULT_COLLECTION as DEFAULT_COLLECTION
from youtu_rag.index.defaults import DEFAULT_PERSIST_DIR as DEFAULT_PERSIST_DIR
from youtu_rag.index.defaults import check_collection_name
from youtu_rag.index.fingerprint import (
    DIMENSION_KEY,
    DOCUMENT_PREFIX_KEY,
    MODEL_KEY,
    POOLING_KEY,
    QUERY_PREFIX_KEY,
    describe_differences,
    differences,
    records_fingerprint,
)
from youtu_rag.index.fingerprint import fingerprint as fingerprint
from youtu_rag.index.fingerprint import recorded_backend as _recorded_backend
from youtu_rag.index.fusion import (
    DEFAULT_MODE,
    Fusion,
    SearchMode,
    check_mode,
    reciprocal_rank_fusion,
)
from youtu_rag.index.lexical_sync import LexicalIndexError, LexicalMirror
from youtu_rag.model.resolution import ResolvedModel
from youtu_rag.model.texts import validate_texts

logger = logging.getLogger(__name__)

#: Environment variable holding a token for a Chroma server started with token auth; it is sent
#: as ``Authorization: Bearer <token>``.
TOKEN_ENV = "YOUTU_RAG_CHROMA_TOKEN"

#: The chunking rules the collection was built with (JSON, see
#: :class:`~youtu_rag.ingest.chunking.ChunkingRules`); absent from collections made before them.
CHUNKING_KEY = "youtu_rag:chunking"
_PAGE = 1000  # records per `get` when listing a whole collection


class StoreError(RuntimeError):
    """A problem with the index that the user can fix; the message says how."""


class CollectionNotFoundError(StoreError, LookupError):
    """The database or the collection does not exist yet."""


class ModelMismatchError(StoreError, ValueError):
    """The collection was built with another embedder than the one opening it."""


class ServerUnreachableError(StoreError, ConnectionError):
    """No Chroma server answers at the URL, or it stopped answering."""


class ServerAuthenticationError(StoreError, PermissionError):
    """The Chroma server (or the proxy in front of it) refused our credentials."""


#: The file an embedded Chroma database keeps everything in; a directory without it is no index.
DATABASE_FILE = "chroma.sqlite3"


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``score`` ranks the results of the search's mode: the cosine similarity to the query
    (1 - distance) for ``dense``, the BM25 score for ``lexical``, the reciprocal-rank-fusion
    score for ``hybrid``. Each side that ranked the chunk reports its own rank (1 is the best)
    and score; a side that did not run, or did not rank it among its candidates, reports None.
    ``fallback`` says why a hybrid search was ranked by the dense side alone (its lexical index
    could not be used), None when it was not.
    """

    id: str
    text: str
    score: float
    metadata: dict[str, Any]
    dense_rank: int | None = None
    dense_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None
    fallback: str | None = None
    rerank_score: float | None = None
    """The reranker's score, when a second stage reordered the hits
    (:mod:`~youtu_rag.index.rerank`)."""

    @property
    def source(self) -> str | None:
        source = self.metadata.get("source")
        return None if source is None else str(source)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``youtu-rag search --json``."""
        return {**asdict(self), "source": self.source}


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection holds and which embedder made it, read without loading any model."""

    name: str
    count: int
    model: str | None
    dimension: int | None
    query_prefix: str | None
    document_prefix: str | None
    pooling: str | None
    backend: str | None = None
    chunking: str | None = None
    """The chunking rules recorded (JSON), ``None`` for a collection made before they were."""
    embedding_function: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    """The stored embedding-function config (``{"name", "config", ...}``), as raw JSON."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``youtu-rag info --json``: the name under ``collection``."""
        fields = asdict(self)
        return {"collection": fields.pop("name"), **fields}


def connect(
    persist_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    *,
    create: bool = True,
) -> ClientAPI:
    """An embedded client on ``persist_dir`` (default ``./.youtu_rag``) or a client of ``url``.

    With ``create=False`` a directory holding no database is an error instead of a new empty
    database, so a read command on a mistyped or wrong path leaves nothing behind.

    Args:
        persist_dir: the database directory.
        url: a Chroma server, ``http(s)://host:port`` (then no ``persist_dir``).
        create: make a missing database directory.

    Returns:
        The client.

    Raises:
        ValueError: both a directory and a URL, or a malformed URL.
        CollectionNotFoundError: no database at ``persist_dir`` and ``create`` is false.
        ServerUnreachableError: no server answers at ``url``.
    """
    if url is not None:
        if persist_dir is not None:
            raise ValueError("give either a persist directory or a server URL, not both")
        return _http_client(url)
    path = Path(DEFAULT_PERSIST_DIR if persist_dir is None else persist_dir)
    if not create and not (path / DATABASE_FILE).is_file():
        raise CollectionNotFoundError(
            f"no index at {path}: build one first with `youtu-rag index PATH`"
        )
    # Chroma's default settings (they read its environment variables, such as
    # ANONYMIZED_TELEMETRY): a plain chromadb.PersistentClient on the same directory in this
    # process must not differ, or Chroma refuses it.
    return chromadb.PersistentClient(path=str(path))


def _http_client(url: str) -> ClientAPI:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server URL must look like http://host:port, got {url!r}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    token = os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, headers=headers)
    except Exception as error:
        status = _http_status(f"{parts.scheme}://{parts.hostname}:{port}", headers or {})
        if status in (401, 403):
            raise ServerAuthenticationError(
                f"the Chroma server at {url} refused the request as "
                f"{'unauthenticated' if status == 401 else 'forbidden'} (HTTP {status}): "
                + (
                    f"the token in {TOKEN_ENV} was not accepted"
                    if token
                    else f"it needs a token; put it in {TOKEN_ENV}"
                )
            ) from error
        raise ServerUnreachableError(
            f"cannot reach the Chroma server at {url} ({error}); start one with "
            "`chroma run --path DIR --host HOST --port PORT` or check the URL"
        ) from error


def _http_status(base_url: str, headers: Mapping[str, str]) -> int | None:
    """The HTTP status the server answers the client's first request with, None if it does not
    answer. Chroma's client folds every failure into one message; the status tells them apart."""
    request = urllib.request.Request(
        f"{base_url}/api/v2/tenants/default_tenant", headers=dict(headers)
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def server_url(client: ClientAPI) -> str | None:
    """The URL of the server behind an HTTP client; None for an embedded database."""
    settings = client.get_settings()
    if "fastapi" not in str(settings.chroma_api_impl).lower():
        return None
    scheme = "https" if settings.chroma_server_ssl_enabled else "http"
    return f"{scheme}://{settings.chroma_server_host}:{settings.chroma_server_http_port}"


@contextlib.contextmanager
def server_errors(client: ClientAPI) -> Iterator[None]:
    """Name the server when a request to it fails on the way (dropped connection, killed server,
    revoked token) instead of passing on a bare ``[Errno 104] Connection reset by peer``."""
    try:
        yield
    except StoreError:
        raise
    except (httpx.TransportError, OSError) as error:
        url = server_url(client)
        if url is None:
            raise
        raise ServerUnreachableError(
            f"lost the connection to the Chroma server at {url} ({error or type(error).__name__})"
            "; everything written before is kept: run the command again once the server is back"
        ) from error
    except (ChromaAuthError, AuthorizationError) as error:
        url = server_url(client)
        raise ServerAuthenticationError(
            f"the Chroma server at {url} refused the request ({error}); check {TOKEN_ENV}"
        ) from error


def describe(client: ClientAPI, name: str = DEFAULT_COLLECTION) -> CollectionInfo:
    """The collection's size and recorded embedder, read without loading any model.

    Args:
        client: a client from :func:`connect`.
        name: the collection.

    Returns:
        What it holds.

    Raises:
        CollectionNotFoundError: the collection does not exist.
    """
    collection = _get_collection(client, name, None)
    metadata = dict(collection.metadata or {})
    dimension = metadata.get(DIMENSION_KEY)
    with server_errors(client):
        count = collection.count()
    return CollectionInfo(
        name=name,
        count=count,
        model=_str_or_none(metadata.get(MODEL_KEY)),
        dimension=None if dimension is None else int(dimension),
        query_prefix=_str_or_none(metadata.get(QUERY_PREFIX_KEY)),
        document_prefix=_str_or_none(metadata.get(DOCUMENT_PREFIX_KEY)),
        pooling=_str_or_none(metadata.get(POOLING_KEY)),
        backend=_recorded_backend(metadata),
        chunking=_str_or_none(metadata.get(CHUNKING_KEY)),
        embedding_function=(collection.configuration_json or {}).get("embedding_function"),
    )


def check_model_name(info: CollectionInfo, model_name: str) -> None:
    """Refuse a model other than the one the collection records, by name alone: before the
    model's own files are read, so a mistyped or unreachable model gets this message first.

    Raises:
        ModelMismatchError: the collection records another model.
    """
    if info.model is not None and info.model != model_name:
        raise ModelMismatchError(
            f"collection {info.name!r} was built with model {info.model!r}, not {model_name!r}; "
            "leave out --model to use the collection's, or pass another --collection"
        )


def check_model(info: CollectionInfo, model: ResolvedModel) -> None:
    """Refuse early, by name alone, a model other than the one the collection records, and a
    stored embedding function that would load other or remote code.

    Lets a caller fail before loading a model; :class:`ChromaStore` checks the full fingerprint.

    Args:
        info: from :func:`describe`.
        model: the model about to be loaded, resolved
            (:func:`~youtu_rag.backends.protocol.describe_model`).

    Raises:
        ModelMismatchError: the collection records another model.
    """
    model_name = model.name
    trust_remote_code = model.profile.trust_remote_code
    check_model_name(info, model_name)
    check_stored_function(
        info.name,
        info.embedding_function,
        model_name,
        trust_remote_code=trust_remote_code,
        # A local model sends texts nowhere; a remote one's destination is checked once it is
        # built (ChromaStore), from its own settings.
        own_config=None if is_remote(model_name) else {"model_name_or_path": model_name},
    )


def check_stored_function(
    collection: str,
    stored: object,
    model_name: str,
    *,
    trust_remote_code: bool = False,
    own_config: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a stored youtu_rag embedding-function config that asks for remote code the process
    did not agree to, that loads another model than ``model_name``, or (given ``own_config``,
    the caller's own function config) that sends texts to a destination other than the
    caller's own which the caller did not allow.

    Chroma rebuilds that config on every write and on every plain-Chroma query, so a config
    planted by whoever can write to the database would otherwise decide what code runs here
    and where texts go.
    """
    if not isinstance(stored, Mapping) or stored.get("name") != YoutuEmbeddingFunction.name():
        return
    config = stored.get("config")
    if not isinstance(config, Mapping):
        return
    if own_config is not None and stored_destination(config) != stored_destination(own_config):
        check_destination(config, collection=collection)
    stored_model = config.get("model_name_or_path")
    check_stored_config(
        dict(config),
        collection=collection,
        trust_remote_code=trust_remote_code and stored_model == model_name,
    )
    if stored_model != model_name:
        raise ModelMismatchError(
            f"collection {collection!r} stores an embedding function for model "
            f"{stored_model!r}, not {model_name!r}: the collection was altered or not written "
            "by youtu-rag; index into another --collection"
        )


def _own_config(embedder: Embedder) -> dict[str, Any]:
    """The function config of the caller's own embedder; empty for one no config describes."""
    try:
        return YoutuEmbeddingFunction.from_embedder(embedder).get_config()
    except TypeError:
        return {}


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _as_chroma(function: YoutuEmbeddingFunction) -> EmbeddingFunction[Embeddable]:
    # Chroma types the parameter with a union of inputs (text or images); ours takes text.
    return cast("EmbeddingFunction[Embeddable]", function)


def _get_collection(
    client: ClientAPI, name: str, function: YoutuEmbeddingFunction | None
) -> Collection:
    try:
        with server_errors(client):
            return client.get_collection(
                name, embedding_function=None if function is None else _as_chroma(function)
            )
    except NotFoundError as error:
        raise CollectionNotFoundError(
            f"collection {name!r} does not exist: build it first with `youtu-rag index PATH`"
            + (f" --collection {name}" if name != DEFAULT_COLLECTION else "")
        ) from error
    except ValueError as error:
        if "Embedding function conflict" not in str(error):
            raise
        persisted = str(error).rpartition("persisted: ")[2]
        raise ModelMismatchError(
            f"collection {name!r} was made with another embedding function ({persisted}): copy "
            f"it into a youtu-rag collection with `youtu-rag reembed {name} --to NEW_NAME` "
            "(youtu_rag.index.reembed.reembed in Python)"
        ) from error


class ChromaRecords:
    """A collection's records by id, with no embedder: enough to write vectors made elsewhere.

    The driver and the workers of a distributed run (:mod:`youtu_rag.ingest.distributed`) hold
    one of these and never load a model; :class:`ChromaStore` adds the embedder on top.
    """

    def __init__(self, client: ClientAPI, collection: Collection) -> None:
        """Hold an open collection.

        Args:
            client: the client it was opened with (its batch limit bounds writes).
            collection: the collection.
        """
        self.client = client
        self.collection = collection
        self.name = collection.name
        self.lexical: LexicalMirror | None = None
        """The lexical index kept in step with the writes made here (:class:`ChromaStore`)."""

    def sync_lexical(self) -> None:
        """Bring the lexical index in step at the end of a run of writes (repairing it if it is
        damaged), so the next search starts at once; a lexical index that cannot be used is a
        warning here, as the writes to the collection stand."""
        if self.lexical is None:
            return
        try:
            with server_errors(self.client):
                self.lexical.ensure_in_sync()
        except LexicalIndexError as error:
            logger.warning("%s; until then hybrid search ranks by the dense side alone", error)

    def count(self) -> int:
        """Records in the collection."""
        with server_errors(self.client):
            return self.collection.count()

    def _current_metadata(self) -> dict[str, Any]:
        """The collection's metadata as stored now: another store object, process or client may
        have changed it since this one was opened."""
        return dict(_get_collection(self.client, self.name, None).metadata or {})

    def chunking_record(self) -> str | None:
        """The chunking rules recorded with the collection (see :data:`CHUNKING_KEY`)."""
        return _str_or_none(self._current_metadata().get(CHUNKING_KEY))

    def record_chunking(self, record: str) -> None:
        """Record the chunking rules the collection's chunks now follow, keeping the rest of
        its metadata (the embedder fingerprint)."""
        metadata = {**self._current_metadata(), CHUNKING_KEY: record}
        with server_errors(self.client):
            self.collection.modify(metadata=metadata)

    def write(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, str | int | float | bool] | None] | None,
        vectors: np.ndarray,
    ) -> int:
        """Upsert ready-made vectors by id, in batches no larger than the server's maximum.

        Args:
            ids: one per text; an existing id is overwritten.
            texts: the documents stored with the vectors.
            metadatas: one per text (None: that record has none).
            vectors: (n, dimension), one row per text.

        Returns:
            The number of records written.
        """
        metadata_list = (
            None if metadatas is None else [None if m is None else dict(m) for m in metadatas]
        )
        with server_errors(self.client):
            for batch_ids, batch_vectors, batch_metadatas, batch_texts in create_batches(
                self.client,
                ids=list(ids),
                embeddings=list(vectors),
                metadatas=cast(Any, metadata_list),
                documents=list(texts),
            ):
                self.collection.upsert(
                    ids=batch_ids,
                    embeddings=batch_vectors,
                    metadatas=batch_metadatas,
                    documents=batch_texts,
                )
            if self.lexical is not None:
                self.lexical.written(ids, texts)
        return len(ids)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete records by id, in batches the server accepts.

        Args:
            ids: the records.

        Returns:
            How many were asked to be deleted.
        """
        items = list(ids)
        with server_errors(self.client):
            size = self.client.get_max_batch_size()
            for start in range(0, len(items), size):
                self.collection.delete(ids=items[start : start + size])
            if self.lexical is not None:
                self.lexical.deleted(items)
        return len(items)

    def ids_where(self, where: Mapping[str, Any]) -> set[str]:
        """Ids of the records whose metadata matches a Chroma ``where`` filter.

        Args:
            where: the filter, e.g. ``{"source": "/docs/a.md"}``.

        Returns:
            The ids.
        """
        found: set[str] = set()
        offset = 0
        while True:
            with server_errors(self.client):
                page = self.collection.get(
                    where=dict(where), include=[], limit=_PAGE, offset=offset
                )
            found.update(page["ids"])
            if len(page["ids"]) < _PAGE:
                return found
            offset += _PAGE

    def sources(self) -> set[str]:
        """Every ``source`` recorded in the collection's metadata."""
        found: set[str] = set()
        offset = 0
        while True:
            with server_errors(self.client):
                page = self.collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for metadata in page["metadatas"] or []:
                source = (metadata or {}).get("source")
                if source is not None:
                    found.add(str(source))
            if len(page["ids"]) < _PAGE:
                return found
            offset += _PAGE


def open_records(
    *,
    persist_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
) -> ChromaRecords:
    """An existing collection's records, opened without rebuilding its stored embedding function
    (so without loading any model)."""
    client = connect(persist_dir, url, create=False)
    return ChromaRecords(client, _get_collection(client, collection, None))


class ChromaStore(ChromaRecords):
    """A Chroma collection in cosine space, bound to the one embedder that fills and queries it.

    The collection carries a :class:`~youtu_rag.index.chroma_function.YoutuEmbeddingFunction`, so
    ``client.get_collection(name)`` elsewhere (LangChain, LlamaIndex, plain Chroma) can still
    embed text the same way.
    """

    def __init__(
        self,
        embedder: Embedder,
        client: ClientAPI,
        name: str = DEFAULT_COLLECTION,
        *,
        create: bool = True,
        query_may_differ: bool = False,
        lexical: bool = True,
        analyzer: Analyzer | None = None,
    ) -> None:
        """Open (or create) the collection and check that this embedder made it. Its lexical
        index (see :mod:`youtu_rag.index.lexical_sync`) is opened when first needed.

        Args:
            embedder: the embedder that fills and queries the collection.
            client: a client from :func:`connect`.
            name: the collection.
            create: create it if missing.
            query_may_differ: accept an embedder whose query instruction alone differs from
                the collection's (document vectors do not depend on it): to try another
                instruction on an existing index. :attr:`query_prefix_change` says so.
            lexical: keep a lexical index (needed by the ``hybrid`` and ``lexical`` modes).
            analyzer: the lexical index's text -> terms (default: English stemming, CJK
                bigrams); another analyzer than the index was built with rebuilds it.

        Raises:
            CollectionNotFoundError: it is missing and ``create`` is false.
            ModelMismatchError: another embedder made it, or not youtu-rag.
            StoreError: it is not in cosine space.
        """
        self.embedder = embedder
        if isinstance(embedder, HttpEmbedder):
            remember_destination(name, embedder.base_url)
        self.query_prefix_change: tuple[str, str] | None = None
        """(recorded, used) when the query instruction differs from the collection's."""
        function = YoutuEmbeddingFunction.from_embedder(embedder)
        expected = fingerprint(embedder)
        if create:
            with server_errors(client):
                collection = client.get_or_create_collection(
                    name,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata=dict(expected),
                    embedding_function=_as_chroma(function),
                )
        else:
            collection = _get_collection(client, name, function)
        super().__init__(client, collection)
        self._check(expected, query_may_differ=query_may_differ)
        if lexical:
            self.lexical = LexicalMirror(client, collection, analyzer)

    @classmethod
    def open(
        cls,
        embedder: Embedder,
        *,
        persist_dir: str | os.PathLike[str] | None = None,
        url: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        create: bool = True,
        lexical: bool = True,
        analyzer: Analyzer | None = None,
    ) -> ChromaStore:
        """Connect (see :func:`connect`) and open, or create, the collection.

        Args:
            embedder: the embedder that fills and queries the collection.
            persist_dir: the database directory.
            url: a Chroma server instead.
            collection: the collection.
            create: create the database and collection if missing.
            lexical: keep a lexical index (see :class:`ChromaStore`).
            analyzer: its analyzer.

        Returns:
            The store.

        Raises:
            StoreError: see :func:`connect` and :class:`ChromaStore`.
        """
        check_collection_name(collection)  # before connecting makes a database
        return cls(
            embedder,
            connect(persist_dir, url, create=create),
            collection,
            create=create,
            lexical=lexical,
            analyzer=analyzer,
        )

    def __repr__(self) -> str:
        return f"ChromaStore({self.name!r}, model={self.embedder.model_name!r})"

    def _check(self, expected: Mapping[str, str | int], *, query_may_differ: bool) -> None:
        """Refuse a collection made by another embedder, or not in cosine space."""
        configuration = self.collection.configuration_json or {}
        index = configuration.get("hnsw") or configuration.get("spann") or {}
        space = index.get("space")
        if space not in (None, "cosine"):
            raise StoreError(
                f"collection {self.name!r} uses {space} distance, not cosine; "
                "index into another --collection"
            )
        recorded = dict(self.collection.metadata or {})
        if not records_fingerprint(recorded):
            raise ModelMismatchError(
                f"collection {self.name!r} was not made by youtu-rag (it records no embedding "
                "model); index into another --collection"
            )
        different = differences(recorded, expected)
        if query_may_differ and set(different) == {QUERY_PREFIX_KEY}:
            was, now = different.pop(QUERY_PREFIX_KEY)
            self.query_prefix_change = (str(was), str(now))
            logger.info("query prefix %r instead of the collection's %r", now, was)
        if different:
            raise ModelMismatchError(mismatch_message(self.name, recorded, different))
        embedder = self.embedder
        check_stored_function(
            self.name,
            configuration.get("embedding_function"),
            embedder.model_name,
            trust_remote_code=is_local_embedder(embedder) and embedder.profile.trust_remote_code,
            own_config=_own_config(embedder),
        )

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, str | int | float | bool]] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> int:
        """Embed ``texts`` as documents (unless given ``embeddings``) and write them by id.

        Writes go in batches no larger than the server's ``get_max_batch_size()``.

        Args:
            ids: one per text; an existing id is overwritten.
            texts: the documents.
            metadatas: one per text.
            embeddings: precomputed vectors, (n, dimension).

        Returns:
            The number of records written.

        Raises:
            TypeError: a text is not a string.
            ValueError: an empty text, lengths that differ, or embeddings of the wrong shape.
        """
        items = validate_texts(texts)
        if len(ids) != len(items) or (metadatas is not None and len(metadatas) != len(items)):
            raise ValueError("ids, texts and metadatas must have the same length")
        if not items:
            return 0
        vectors = self.embedder.encode_documents(items) if embeddings is None else embeddings
        if vectors.shape != (len(items), self.embedder.dimension):
            raise ValueError(
                f"embeddings have shape {vectors.shape}, expected "
                f"{(len(items), self.embedder.dimension)}"
            )
        return self.write(ids, items, metadatas, vectors)

    def add_documents(self, documents: Iterable[Any]) -> list[str]:
        """Embed and write LangChain ``Document``s (anything with ``page_content`` and
        ``metadata``), as ``langchain_chroma.Chroma.add_documents`` does.

        Args:
            documents: each one's ``id`` is kept when set, else a new UUID is given.

        Returns:
            The ids written, in order.

        Raises:
            TypeError: a document's text is not a string (the message names its index).
            ValueError: a document's text is empty.
        """
        items = list(documents)
        ids = [str(getattr(item, "id", None) or uuid.uuid4()) for item in items]
        texts = [getattr(item, "page_content", None) for item in items]
        metadatas = [_flat_metadata(getattr(item, "metadata", None)) for item in items]
        self.upsert(ids, cast(Any, texts), metadatas)
        return ids

    def add_nodes(self, nodes: Iterable[Any]) -> list[str]:
        """Embed and write LlamaIndex nodes (anything with ``get_content()``, ``metadata`` and
        ``node_id``), keeping each node's id and, as ``ref_doc_id``, its source document's.

        Args:
            nodes: text nodes, e.g. from a ``SentenceSplitter`` or an ``IngestionPipeline``.

        Returns:
            The ids written (the node ids), in order.

        Raises:
            TypeError: a node's text is not a string (the message names its index).
            ValueError: a node's text is empty.
        """
        items = list(nodes)
        ids = [str(item.node_id) for item in items]
        texts = [item.get_content() for item in items]
        metadatas = []
        for item in items:
            metadata = _flat_metadata(getattr(item, "metadata", None))
            source_document = getattr(item, "ref_doc_id", None)
            if source_document is not None:
                metadata["ref_doc_id"] = str(source_document)
            metadatas.append(metadata)
        self.upsert(ids, texts, metadatas)
        return ids

    def search(
        self,
        query: str,
        k: int = 4,
        *,
        where: Mapping[str, Any] | None = None,
        mode: SearchMode = DEFAULT_MODE,
        mmr: bool = False,
        fetch_k: int | None = None,
        lambda_mult: float = 0.5,
        where_document: Mapping[str, Any] | None = None,
        fusion: Fusion | None = None,
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first, optionally filtered by metadata.

        Args:
            query: the search text, embedded with the query instruction.
            k: passages to return.
            where: a Chroma metadata filter; it applies to both sides of a hybrid search.
            mode: ``hybrid`` (dense and lexical rankings fused), ``dense`` or ``lexical``.
            mmr: re-rank the ``fetch_k`` best candidates by maximal marginal relevance
                (``dense`` and ``hybrid``).
            fetch_k: MMR candidates (default ``4 * k``).
            lambda_mult: MMR trade-off, relevance (1) against diversity (0).
            where_document: a Chroma document filter, e.g. ``{"$contains": "pooling"}``.
            fusion: how a hybrid search fuses (default :class:`~youtu_rag.index.fusion.Fusion`).

        Returns:
            Up to ``k`` hits, with each side's rank and score.

        Raises:
            ValueError: ``k`` below 1, ``lambda_mult`` outside [0, 1], an empty query, an
                unknown mode, MMR in lexical mode, or a lexical mode on a store opened without
                a lexical index.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query = validate_texts([query])[0]
        if not 0.0 <= lambda_mult <= 1.0:
            raise ValueError(f"lambda_mult must be between 0 and 1, got {lambda_mult}")
        check_mode(mode)
        if mode != "dense" and self.lexical is None:
            raise ValueError(f"{mode} search needs the lexical index: open the store with it")
        if mmr and mode == "lexical":
            raise ValueError("MMR compares embeddings: use it with the dense or hybrid mode")
        if mode == "dense":
            return self._dense_search(query, k, where, where_document, mmr, fetch_k, lambda_mult)
        try:
            return self._search_with_lexical(
                query, k, where, where_document, mode, mmr, fetch_k, lambda_mult, fusion
            )
        except LexicalIndexError as error:
            if mode == "lexical":
                raise
            logger.warning("hybrid search ranked by the dense side alone: %s", error)
            hits = self._dense_search(query, k, where, where_document, mmr, fetch_k, lambda_mult)
            return [dataclasses.replace(hit, fallback=str(error)) for hit in hits]

    def _search_with_lexical(
        self,
        query: str,
        k: int,
        where: Mapping[str, Any] | None,
        where_document: Mapping[str, Any] | None,
        mode: SearchMode,
        mmr: bool,
        fetch_k: int | None,
        lambda_mult: float,
        fusion: Fusion | None,
    ) -> list[Hit]:
        fusion = fusion or Fusion()
        wanted = max(k, fetch_k or 4 * k) if mmr else k
        assert self.lexical is not None
        with server_errors(self.client):
            self.lexical.ensure_in_sync()  # before the query is embedded: it may fail
            available = self.count()
            if not available:
                return []
            query_vector = None if mode == "lexical" else self.embedder.encode_queries([query])[0]
            for _ in range(2):  # a second pass if the hits' texts were replaced meanwhile
                hits = self._ranked_search(
                    query, query_vector, wanted, where, where_document, mode, fusion, available
                )
                if hits is not None:
                    break
            else:
                raise StoreError(f"collection {self.name!r} kept changing during the search")
        if mmr and hits and query_vector is not None:
            vectors = self._vectors([hit.id for hit in hits])
            order = maximal_marginal_relevance(query_vector, vectors, k, lambda_mult)
            return [hits[i] for i in order]
        return hits[:k]

    def _dense_search(
        self,
        query: str,
        k: int,
        where: Mapping[str, Any] | None,
        where_document: Mapping[str, Any] | None,
        mmr: bool,
        fetch_k: int | None,
        lambda_mult: float,
    ) -> list[Hit]:
        query_vector = self.embedder.encode_queries([query])[0]
        available = self.count()
        if not available:
            return []
        wanted = max(k, fetch_k or 4 * k) if mmr else k
        include: Include = ["documents", "metadatas", "distances"]
        if mmr:
            include.append("embeddings")
        with server_errors(self.client):
            result = self.collection.query(
                query_embeddings=[query_vector],
                n_results=min(wanted, available),
                where=None if where is None else dict(where),
                where_document=None if where_document is None else cast(Any, dict(where_document)),
                include=include,
            )
        ids = result["ids"][0]
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        hits = [
            Hit(
                id=ids[i],
                text=documents[i] or "",
                score=1.0 - float(distances[i]),
                metadata=dict(metadatas[i] or {}),
                dense_rank=i + 1,
                dense_score=1.0 - float(distances[i]),
            )
            for i in range(len(ids))
        ]
        if mmr and hits:
            candidates = np.asarray((result["embeddings"] or [[]])[0], dtype=np.float32)
            order = maximal_marginal_relevance(query_vector, candidates, k, lambda_mult)
            return [hits[i] for i in order]
        return hits

    def _ranked_search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        wanted: int,
        where: Mapping[str, Any] | None,
        where_document: Mapping[str, Any] | None,
        mode: SearchMode,
        fusion: Fusion,
        available: int,
    ) -> list[Hit] | None:
        """Lexical or hybrid hits; None if a hit's text was replaced by another client since
        it was indexed (it is re-indexed: search again). ``where_document`` filters the dense
        side and the fused hits, so a lexical-only hit that fails it is dropped."""
        assert self.lexical is not None
        depth = wanted if mode == "lexical" else max(wanted, fusion.candidates)
        lexical = self.lexical.search(query, depth, where)
        lexical_ranks = {hit.id: (rank, hit.score) for rank, hit in enumerate(lexical, start=1)}
        dense_ranks: dict[str, tuple[int, float]] = {}
        if query_vector is not None:
            result = self.collection.query(
                query_embeddings=[query_vector],
                n_results=min(depth, available),
                where=None if where is None else dict(where),
                where_document=None if where_document is None else cast(Any, dict(where_document)),
                include=["distances"],
            )
            distances = (result["distances"] or [[]])[0]
            dense_ranks = {
                id_: (rank, 1.0 - float(distance))
                for rank, (id_, distance) in enumerate(
                    zip(result["ids"][0], distances, strict=True), start=1
                )
            }
        if query_vector is None:
            order = [(hit.id, hit.score) for hit in lexical[:wanted]]
        else:
            order = reciprocal_rank_fusion(
                [
                    (list(dense_ranks), fusion.dense_weight),
                    ([hit.id for hit in lexical], fusion.lexical_weight),
                ],
                fusion.k,
            )[:wanted]
        if not order:
            return []
        records = self.collection.get(
            ids=[id_ for id_, _ in order],
            where_document=None if where_document is None else cast(Any, dict(where_document)),
            include=["documents", "metadatas"],
        )
        documents = dict(zip(records["ids"], records["documents"] or [], strict=True))
        metadatas = dict(zip(records["ids"], records["metadatas"] or [], strict=True))
        texts = {id_: documents[id_] or "" for id_, _ in order if id_ in documents}
        if self.lexical.refresh_if_changed(texts):
            return None
        hits: list[Hit] = []
        for id_, score in order:
            if id_ not in documents:
                continue  # deleted by another client since the ranking
            dense = dense_ranks.get(id_)
            lexical_hit = lexical_ranks.get(id_)
            hits.append(
                Hit(
                    id=id_,
                    text=texts[id_],
                    score=score,
                    metadata=dict(metadatas[id_] or {}),
                    dense_rank=None if dense is None else dense[0],
                    dense_score=None if dense is None else dense[1],
                    lexical_rank=None if lexical_hit is None else lexical_hit[0],
                    lexical_score=None if lexical_hit is None else lexical_hit[1],
                )
            )
        return hits

    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        records = self.collection.get(ids=list(ids), include=["embeddings"])
        embeddings = records["embeddings"]
        by_id = dict(zip(records["ids"], [] if embeddings is None else embeddings, strict=True))
        return np.asarray([by_id[id_] for id_ in ids], dtype=np.float32)


def _flat_metadata(metadata: object) -> dict[str, str | int | float | bool]:
    """The scalar entries of a document's metadata: what Chroma can store and filter on.

    Raises:
        TypeError: an entry holds a list, dict or other object Chroma cannot store.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    flat: dict[str, str | int | float | bool] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"metadata {key!r} is a {type(value).__name__}; Chroma stores str, int, float "
                "and bool values only"
            )
        flat[str(key)] = value
    return flat


def mismatch_message(
    collection: str, recorded: Mapping[str, Any], different: Mapping[str, tuple[Any, Any]]
) -> str:
    """Why an embedder cannot use a collection, naming only what differs.

    Args:
        collection: its name.
        recorded: its fingerprint metadata.
        different: fingerprint key to (recorded, embedder's) values that differ.

    Returns:
        The message, with advice that fits: another model, or the same model with other rules.
    """
    listed = "index vs embedder: " + describe_differences(different)
    if MODEL_KEY in different:
        was, now = different[MODEL_KEY]
        return (
            f"collection {collection!r} was built with model {was!r}, not {now!r} ({listed}); "
            f"use model {was} (the CLI's default for this collection) or another collection"
        )
    return (
        f"collection {collection!r} was built with model {recorded.get(MODEL_KEY)!r} under "
        f"other rules ({listed}); open it with the rules it records (the CLI does when "
        "--model is not given) or index into another collection"
    )


def maximal_marginal_relevance(
    query: np.ndarray, candidates: np.ndarray, k: int, lambda_mult: float = 0.5
) -> list[int]:
    """Indices of ``k`` candidates chosen greedily for relevance minus redundancy.

    Args:
        query: the unit query vector.
        candidates: (n, dim) unit vectors; dot products are cosine similarities.
        k: how many to choose.
        lambda_mult: relevance (1) against diversity (0).

    Returns:
        Candidate indices in the order chosen.
    """
    if not len(candidates):
        return []
    relevance = candidates @ query
    chosen = [int(np.argmax(relevance))]
    while len(chosen) < min(k, len(candidates)):
        redundancy = (candidates @ candidates[chosen].T).max(axis=1)
        scores = lambda_mult * relevance - (1.0 - lambda_mult) * redundancy
        scores[chosen] = -np.inf
        chosen.append(int(np.argmax(scores)))
    return chosen
