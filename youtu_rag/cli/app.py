"""The ``youtu-rag`` typer app: the consoles, the error contract and the exit codes.

Failures a user can cause (server down, unknown collection, model mismatch, no network for the
hub) end in one red line and exit 1, never a traceback. ``index`` exits 3 when it had to skip
files and 130 when stopped by Ctrl-C. Text from documents, paths and messages is printed as
text: no rich markup, emoji codes or highlighting is applied to it, and its control characters
are shown escaped (``\\x1b``); ``--json`` output is exact JSON.

Nothing here imports torch, transformers, chromadb or Ray: each command imports what it needs
when it runs, so ``--help`` is instant.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from youtu_rag.cli.options import option_groups

app = typer.Typer(
    name="youtu-rag",
    help="Index documents with Youtu-Embedding into Chroma, search them and ask a chat model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: Control characters a document, a file name or a message may carry: C0 and C1 codes (ESC
#: starts terminal sequences that clear the screen or set the title) and the bidirectional
#: overrides that reorder what is shown. Newlines and tabs are layout, and stay.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every control character shown as its escape (``\\x1b``), so nothing read
    from a document, a path or a server can drive the terminal."""
    return _CONTROLS.sub(lambda match: ascii(match.group())[1:-1], text)


class TerminalConsole(Console):
    """A console whose printed strings have their control characters escaped
    (:func:`escape_controls`); ``--json`` output does not go through it and stays exact."""

    def print(self, *objects: Any, **options: Any) -> None:
        """Print as rich does, with control characters of string arguments escaped."""
        super().print(
            *(escape_controls(item) if isinstance(item, str) else item for item in objects),
            **options,
        )


#: Everything printed is literal text: "[...]" in a passage or a path is not markup, and
#: ":x:" is not an emoji.
console = TerminalConsole(markup=False, highlight=False, soft_wrap=True, emoji=False)
err_console = TerminalConsole(stderr=True, highlight=False, soft_wrap=True, emoji=False)

R = TypeVar("R")

#: Exit status of ``index`` when some files were skipped (the others are indexed).
EXIT_SKIPPED = 3
#: Exit status after Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def handle_errors(command: Callable[..., R]) -> Callable[..., R]:
    """Turn the errors a user can cause into one line on stderr and exit status 1.

    Args:
        command: a command function; its option groups are spread for typer
            (:func:`option_groups`).

    Returns:
        The command as typer should register it.
    """
    grouped = option_groups(command)

    @functools.wraps(grouped)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        try:
            return grouped(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as error:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from error
        except Exception as error:  # the CLI's contract: one line, no traceback
            logging.getLogger(__name__).debug("command failed", exc_info=True)
            # Escaped: a message holding "[...]" is text, not rich markup.
            message = escape(str(error))
            err_console.print(f"[red]error:[/red] {message}")
            raise typer.Exit(1) from error

    return wrapper


class LogFormatter(logging.Formatter):
    """``warning: MESSAGE``, as the CLI's own ``error:`` lines read; with -v the logger's name
    follows the level. Never logging's default ``WARNING:youtu_rag.model.embedder:MESSAGE``."""

    def __init__(self, *, verbose: bool) -> None:
        """Name the logger in each line when ``verbose``."""
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        """One line: level in lower case, the logger's name under -v, the message."""
        level = record.levelname.lower()
        text = super().format(record)
        return f"{level} ({record.name}): {text}" if self.verbose else f"{level}: {text}"


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    """youtu-rag: Youtu-Embedding retrieval for RAG."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(verbose=verbose))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    if not verbose:
        # pypdf warns about each defect it recovers from or fails on; a file it cannot read is
        # reported once, as skipped, with the reason.
        logging.getLogger("pypdf").setLevel(logging.ERROR)
