"""What commands open: the embedding model and the store, each failing in one line before any
work starts."""

from __future__ import annotations

import contextlib
import signal
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from youtu_rag.cli.app import err_console
from youtu_rag.cli.options import ModelOptions, StoreOptions

if TYPE_CHECKING:
    from youtu_rag.backends.protocol import Embedder
    from youtu_rag.index.store import ChromaStore
    from youtu_rag.model.resolution import ResolvedModel


#: Share of a text's tokens mapped to the unknown token above which a command warns: the model
#: cannot read this script, and its results for it are noise.
UNKNOWN_TOKEN_WARNING = 0.10
_warned: weakref.WeakSet[Any] = weakref.WeakSet()


def warn_unknown_tokens(embedder: Embedder, what: str) -> None:
    """Say once per embedder when its tokenizer could not read much of the ``what`` it embedded
    (counted by the model layer; API models do not count)."""
    counts = getattr(embedder, "unknown_tokens", None)
    if counts is None or embedder in _warned:
        return
    seen = counts()
    if seen.fraction <= UNKNOWN_TOKEN_WARNING:
        return
    _warned.add(embedder)
    err_console.print(
        f"warning: {embedder.model_name} could not read {seen.fraction:.0%} of {what} "
        f"({seen.unknown} of {seen.total} tokens became its unknown token): its results for "
        "this text are noise. Use a model that reads this language, e.g. "
        "tencent/Youtu-Embedding for Chinese.",
        markup=False,
        highlight=False,
    )


def one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def check_model_path(model: str) -> None:
    """A --model that looks like a path must be a directory: fail before anything loads."""
    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"--model {model}: no such directory")


@contextlib.contextmanager
def model_not_found(model: str) -> Iterator[None]:
    """Turn a model that cannot be found into one line saying how to work offline."""
    try:
        yield
    except OSError as error:
        raise RuntimeError(
            f"cannot load model {model!r}: {one_line(error)} To work offline, pass --model "
            "with a local directory holding the model (config.json, weights, tokenizer)."
        ) from error


def resolve_model_option(model: str) -> ResolvedModel:
    """The --model resolved once (its files read, no weights loaded), or one line saying why
    it cannot be."""
    from youtu_rag.backends.protocol import describe_model

    check_model_path(model)
    with model_not_found(model):
        return describe_model(model)


def load_embedder(options: ModelOptions) -> Embedder:
    """The embedder, or one line saying why it cannot load (typically: offline, no local copy)."""
    from youtu_rag.backends.protocol import create_embedder

    model = options.model
    check_model_path(model)
    with model_not_found(model):
        return create_embedder(model, device=options.device, dtype=options.dtype)


def open_store(store: StoreOptions, model: ModelOptions, *, create: bool) -> ChromaStore:
    """Connect and check first: a wrong URL, an unknown collection or another model's index
    fails before a model loads."""
    from youtu_rag.index.store import ChromaStore, CollectionNotFoundError, check_model, describe

    client = connect_store(store, create=create)
    try:
        check_model(describe(client, store.collection), resolve_model_option(model.model))
    except CollectionNotFoundError:
        if not create:
            raise
    return ChromaStore(load_embedder(model), client, store.collection, create=create)


def check_one_index(store: StoreOptions) -> None:
    """--url and a --persist-dir other than the default name two indexes: refuse rather than
    silently use one."""
    from youtu_rag.index.defaults import DEFAULT_PERSIST_DIR

    if store.url and store.persist_dir != DEFAULT_PERSIST_DIR:
        raise ValueError(
            f"--url {store.url} and --persist-dir {store.persist_dir} name two indexes; give one"
        )


def connect_store(store: StoreOptions, *, create: bool) -> Any:
    from youtu_rag.index.store import connect

    check_one_index(store)
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
