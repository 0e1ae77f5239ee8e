"""How long the ``youtu-rag`` command makes a user wait: ``--help``, ``info``, a first ``search``
(a fresh process that loads the model), a search through a running ``serve`` (``--server``),
and each further query of a ``shell`` (the model loaded once).

Every figure is a whole command as a user runs it, in fresh processes on this machine: the
shell's per-query time is the difference between a shell given one query and one given
``1 + queries``, divided by ``queries``, so its start-up cancels out.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from youtu_rag.measure.bench_serve import machine
from youtu_rag.serve.process import running_server, serve_command

#: What a repeated search through ``serve`` or ``shell`` should take with the demo model.
REPEATED_SEARCH_GOAL_S = 0.5
_QUERIES = ("How does masked mean pooling treat the instruction?", "掩码平均池化如何处理指令")


def bench_cli(
    paths: Sequence[Path], model: str, *, repeats: int = 3, queries: int = 10
) -> dict[str, Any]:
    """Index ``paths`` with ``model`` into a temporary collection, then time each command.

    Args:
        paths: files and folders to index (the demo: ``examples/sample_docs``).
        model: the embedding model.
        repeats: runs of each single command; the median is reported.
        queries: further queries given to the shell.

    Returns:
        Seconds per step, the goal and whether it was met, and the machine.
    """
    with tempfile.TemporaryDirectory(prefix="youtu-rag-bench-cli-") as folder:
        where = ["--persist-dir", str(Path(folder) / "db")]
        index_s = _run(["index", *map(str, paths), "--model", model, *where])
        steps: dict[str, float] = {"index": index_s}
        steps["--help"] = _median(repeats, ["--help"])
        steps["info"] = _median(repeats, ["info", *where])
        steps["search (loads the model)"] = _median(repeats, ["search", _QUERIES[0], *where])
        with running_server(model, Path(folder)) as server:
            steps["search --server (repeated)"] = _median(
                repeats, ["search", _QUERIES[1], "--server", server.url, *where]
            )
        one = _shell(where, 1)
        many = _shell(where, 1 + queries)
        steps["shell, each further query"] = max(0.0, (many - one) / queries)
    repeated = min(steps["search --server (repeated)"], steps["shell, each further query"])
    return {
        "model": model,
        "steps": steps,
        "goal_s": REPEATED_SEARCH_GOAL_S,
        "goal_met": repeated <= REPEATED_SEARCH_GOAL_S,
        "machine": machine(),
    }


def _run(arguments: list[str], stdin: str | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [*serve_command(), *arguments], input=stdin, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"youtu-rag {' '.join(arguments)} failed: {result.stderr.strip()}")
    return elapsed


def _median(repeats: int, arguments: list[str]) -> float:
    return statistics.median(_run(arguments) for _ in range(repeats))


def _shell(where: list[str], count: int) -> float:
    lines = "".join(f"{_QUERIES[i % len(_QUERIES)]}\n" for i in range(count))
    return _run(["shell", *where], stdin=lines)
