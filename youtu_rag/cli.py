"""The ``youtu-rag`` command: index a folder into Chroma, search it, ask a chat model, evaluate.

Every command takes the same model and store options. Failures a user can cause (server down,
unknown collection, model mismatch, no network for the hub) end in one red line and exit 1,
never a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from youtu_rag.profiles import YOUTU_EMBEDDING

app = typer.Typer(
    name="youtu-rag",
    help="Index documents with Youtu-Embedding into Chroma, search them and ask a chat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

# Options shared by every command.
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Hub id or local directory of the embedding model.")
]
PersistDirOption = Annotated[
    str, typer.Option("--persist-dir", help="Directory of the embedded Chroma database.")
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Chroma server, e.g. http://127.0.0.1:8000 (instead of a dir)."),
]
CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best available).")
]
DtypeOption = Annotated[
    str | None, typer.Option("--dtype", help="float32 or bfloat16 (default: bf16 on CUDA).")
]
DEFAULT_MODEL = YOUTU_EMBEDDING
DEFAULT_PERSIST_DIR = ".youtu_rag"
DEFAULT_COLLECTION = "youtu_rag"


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can cause into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:  # noqa: BLE001 - the CLI's contract is one line, no traceback
            logging.getLogger(__name__).debug("command failed", exc_info=True)
            err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from error

    return wrapper


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    """youtu-rag: Youtu-Embedding retrieval for RAG."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
