"""The installed ``youtu-rag`` command in a process of its own: its warnings reach stderr as a
user sees them (in-process runs share pytest's logging, which swallows them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMMAND = Path(sys.executable).with_name("youtu-rag")


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    user: int | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``youtu-rag ARGS`` offline, ``stdin`` its input; ``user`` runs it as that uid (the
    caller being root)."""
    return subprocess.run(
        [str(COMMAND), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=300,
        check=False,
        user=user,
    )
