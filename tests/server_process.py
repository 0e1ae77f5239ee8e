"""The real ``youtu-rag serve`` (MiniLM) the server tests talk to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from youtu_rag import MINILM
from youtu_rag.serve.process import ServerProcess, running_server

__all__ = ["QUERY_INSTRUCTION", "ServerProcess", "youtu_rag_serve"]

#: The served MiniLM gets a query instruction, so queries and documents differ and a test can
#: tell which one it got.
QUERY_INSTRUCTION = "Given a question, retrieve passages that answer it"


@contextlib.contextmanager
def youtu_rag_serve(
    log_dir: Path, *options: str, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """``youtu-rag serve --model sentence-transformers/all-MiniLM-L6-v2 OPTIONS``, ready."""
    with running_server(MINILM, log_dir, *options, env=env, ready_timeout_s=120) as server:
        yield server
