"""What commands open: the embedding model and the store, each failing in one line before any
work starts."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from youtu_rag.cli.app import err_console
from youtu_rag.cli.options import MODEL_ENV, ModelOptions, StoreOptions, model_or_default

if TYPE_CHECKING:
    from youtu_rag.backends.protocol import Embedder
    from youtu_rag.index.store import ChromaStore, CollectionInfo
    from youtu_rag.model.resolution import ResolvedModel


def one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def check_model_path(model: str) -> None:
    """A --model that looks like a path must be a model's folder: fail before anything loads."""
    from youtu_rag.model.resolution import check_model_folder

    check_model_folder(model)


@contextlib.contextmanager
def model_not_found(model: str) -> Iterator[None]:
    """A model that cannot be found fails with the one message every entry point gives."""
    from youtu_rag.model.resolution import ModelNotFoundError

    try:
        yield
    except ModelNotFoundError:
        raise
    except OSError as error:
        raise ModelNotFoundError.from_error(model, error) from error


#: What a collection records about its embedder besides the model name, as embedder options.
#: Only rules that shape vectors: never where texts go (a server URL, an API endpoint) nor
#: whether model code runs (``trust_remote_code`` follows the model's profile alone).
RECORDED_RULES = (
    "query_instruction",
    "document_instruction",
    "pooling",
    "pooling_mode",
    "max_length",
    "attention",
)


@dataclass(frozen=True)
class ChosenModel:
    """The model a command embeds with, the rules it follows, and where the choice came from."""

    name: str
    origin: str
    rules: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``model: NAME (ORIGIN)``, the line commands print before their results."""
        return f"model: {self.name} ({self.origin})"


def choose_model(
    info: CollectionInfo | None, given: str | None, *, query_instruction: str | None = None
) -> ChosenModel:
    """``--model`` when given, else the model the collection records, else ``YOUTU_RAG_MODEL``,
    else Youtu-Embedding; with the rules the collection records when it is that model.

    A ``--model`` other than the collection's is not refused here: :func:`open_store` refuses
    it, naming both, before anything loads.

    Args:
        info: the collection, None when there is none yet.
        given: ``--model``, None when not given.
        query_instruction: a query instruction replacing the recorded one (documents keep
            theirs).

    Returns:
        The choice.
    """
    recorded = None if info is None else info.model
    if given is not None:
        chosen = ChosenModel(given, "--model")
    elif recorded is not None and info is not None:
        chosen = ChosenModel(recorded, f"recorded in collection {info.name!r}")
    elif os.environ.get(MODEL_ENV, "").strip():
        chosen = ChosenModel(model_or_default(None), MODEL_ENV)
    else:
        chosen = ChosenModel(model_or_default(None), "the default")
    if info is not None and chosen.name == recorded:
        chosen.rules.update(_recorded_rules(info))
    if query_instruction is not None:
        chosen.rules["query_instruction"] = query_instruction
    return chosen


#: What a collection built through another OpenAI-compatible server records, as the
#: :class:`~youtu_rag.backends.http.HttpEmbedder` keywords that reopen it (never a key).
RECORDED_SERVER_RULES = {
    "server_model": "model",
    "query_prefix": "query_prefix",
    "document_prefix": "document_prefix",
    "input_type": "input_type",
    "encoding_format": "encoding_format",
    "batch_size": "batch_size",
    "dimension": "dimension",
    "max_length": "max_length",
}


def _recorded_rules(info: CollectionInfo) -> dict[str, Any]:
    """The collection's stored embedding-function options that shape vectors: a local model's,
    or how a server's model marks queries and documents (a Tencent model's are its own)."""
    from youtu_rag.backends.protocol import is_remote, is_server_url

    stored = info.embedding_function
    if not isinstance(stored, Mapping) or info.model is None:
        return {}
    config = stored.get("config")
    if stored.get("name") != "youtu_rag" or not isinstance(config, Mapping):
        return {}
    if config.get("model_name_or_path") != info.model:
        return {}
    if is_server_url(info.model):
        return {
            ours: config[key]
            for key, ours in RECORDED_SERVER_RULES.items()
            if config.get(key) is not None
        }
    if is_remote(info.model) or "base_url" in config:
        return {}
    return {key: config[key] for key in RECORDED_RULES if config.get(key) is not None}


def load_embedder(
    model: str, options: ModelOptions, rules: Mapping[str, Any] | None = None
) -> Embedder:
    """The embedder, or one line saying why it cannot load (typically: offline, no local copy)."""
    from youtu_rag.backends.protocol import create_embedder, is_server_url

    check_model_path(model)
    if is_server_url(model):
        preset = getattr(options, "server_preset", None)
        marking = {} if preset is None else {"preset": preset}
        return cast("Embedder", create_embedder(model, **marking, **(rules or {})))
    with model_not_found(model):
        return create_embedder(model, device=options.device, dtype=options.dtype, **(rules or {}))


def server_embedder(url: str, chosen: ChosenModel) -> Embedder:
    """The ``--server`` client: a running ``youtu-rag serve`` that must serve ``chosen``."""
    from youtu_rag.backends.http import HttpEmbedder

    embedder = HttpEmbedder(url)
    if not embedder.is_youtu_server:
        raise ValueError(
            f"--server {url} is not a youtu-rag serve server; for another embeddings server, "
            "index with --model http(s)://HOST:PORT/v1"
        )
    if embedder.model_name != chosen.name:
        raise ValueError(
            f"--server {url} serves {embedder.model_name!r}, not {chosen.name!r} ({chosen.origin})"
        )
    return cast("Embedder", embedder)


def load_reranker(model: str, options: ModelOptions) -> Any:
    """The --rerank cross-encoder, or one line saying why it cannot load."""
    from youtu_rag.backends.protocol import create_reranker

    check_model_path(model)
    with model_not_found(model):
        return create_reranker(model, device=options.device, dtype=options.dtype)


def resolve_model_option(model: str) -> ResolvedModel:
    """The --model resolved once (its files read, no weights loaded), or one line saying why
    it cannot be."""
    from youtu_rag.backends.protocol import describe_model

    check_model_path(model)
    with model_not_found(model):
        return describe_model(model)


def open_store(
    store: StoreOptions,
    model: ModelOptions,
    *,
    create: bool,
    query_instruction: str | None = None,
    server: str | None = None,
) -> tuple[ChromaStore, ChosenModel]:
    """Connect and check first: a wrong URL, an unknown collection or another model's index
    fails before a model loads, and a model that cannot load fails before a new database is
    made (no empty ``chroma.sqlite3`` left by a typo).

    Args:
        store: where the collection is.
        model: ``--model`` (None: the collection's), device and dtype.
        create: make the database and collection when missing (``index``).
        query_instruction: embed queries with this instruction instead of the recorded one;
            document vectors do not depend on it, so it is allowed for reading commands only.
        server: a running ``youtu-rag serve`` that embeds instead of a model loaded here.

    Returns:
        The store, and the model it embeds with.
    """
    from youtu_rag.backends.destinations import DestinationRefusedError, check_destination
    from youtu_rag.backends.protocol import is_server_url
    from youtu_rag.index.store import (
        ChromaStore,
        CollectionNotFoundError,
        check_model,
        check_model_name,
        describe,
    )

    if model.model is not None:
        check_model_path(model.model)
    client = None
    info = None
    try:
        client = connect_store(store, create=False)
        info = describe(client, store.collection)
    except CollectionNotFoundError:
        if not create:
            raise
    chosen = choose_model(info, model.model, query_instruction=query_instruction)
    if info is not None:
        check_model_name(info, chosen.name)
    if server is not None:  # the model's files are the server's: nothing to read here
        if query_instruction is not None:
            raise ValueError("--query-instruction is the server's own with --server")
        embedder = server_embedder(server, chosen)
    else:
        if info is not None and is_server_url(chosen.name) and chosen.origin != "--model":
            # The URL came from the database: texts go there only if the caller allows it.
            try:
                check_destination({"base_url": chosen.name}, collection=info.name)
            except DestinationRefusedError as error:
                raise DestinationRefusedError(f"{error}, or --model {chosen.name}") from None
        elif info is not None and not is_server_url(chosen.name):
            check_model(info, resolve_model_option(chosen.name))
        embedder = load_embedder(chosen.name, model, chosen.rules)
    if client is None:
        client = connect_store(store, create=True)
    opened = ChromaStore(
        embedder, client, store.collection, create=create, query_may_differ=not create
    )
    return opened, chosen


def choose_for_collection(store: StoreOptions, model: ModelOptions) -> ChosenModel:
    """:func:`choose_model` for a collection that may not exist yet, loading no model; with
    ``--model`` given, without connecting (whoever opens the collection checks it)."""
    from youtu_rag.index.store import CollectionNotFoundError, describe

    if model.model is not None:
        return choose_model(None, model.model)
    try:
        info = describe(connect_store(store, create=False), store.collection)
    except CollectionNotFoundError:
        info = None
    return choose_model(info, model.model)


@contextlib.contextmanager
def database_removed_on_failure(store: StoreOptions) -> Iterator[list[Any]]:
    """A database this run creates is removed again when the run fails, so the next command
    says "no index" instead of finding an empty one. Yields a list for the run's clients, which
    are closed first (Chroma keeps one system per path per process)."""
    from youtu_rag.index.store import DATABASE_FILE

    path = Path(store.persist_dir)
    clients: list[Any] = []
    if store.url or (path / DATABASE_FILE).exists():
        yield clients
        return
    before = set(path.iterdir()) if path.is_dir() else None
    try:
        yield clients
    except Exception:
        for client in clients:
            client.close()
        made = [path] if before is None else sorted(set(path.iterdir()) - before)
        for entry in made:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        raise


def check_store_options(store: StoreOptions) -> None:
    """Before anything is opened or made: --url and a --persist-dir other than the default name
    two indexes (refused rather than silently using one), and a collection name Chroma would
    refuse (refused before a database is made for it)."""
    from youtu_rag.index.defaults import DEFAULT_PERSIST_DIR, check_collection_name

    check_collection_name(store.collection)
    if store.url and store.persist_dir != DEFAULT_PERSIST_DIR:
        raise ValueError(
            f"--url {store.url} and --persist-dir {store.persist_dir} name two indexes; give one"
        )


def connect_store(store: StoreOptions, *, create: bool) -> Any:
    from youtu_rag.index.store import connect

    check_store_options(store)
    return connect(None if store.url else store.persist_dir, store.url, create=create)


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """An event the first Ctrl-C sets (the run stops after its current batch); a second Ctrl-C
    raises KeyboardInterrupt at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print(
            "Stopping after the current batch; press Ctrl-C again to stop at once.",
            highlight=False,
        )

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
