"""The README's plain-Chroma recipe, run in a fresh interpreter: import youtu_rag, reopen each
collection by name with Chroma alone, and act on it by text. Tests of stored configs run it to
see what a collection's own record makes plain Chroma do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Prints one line per (collection, action): ``OK`` with the ids a query found (an add finds
#: none), or ``ERROR`` with the message on one line.
RECIPE = textwrap.dedent(
    """
    import json, sys
    import chromadb
    import youtu_rag  # registers the embedding function

    targets, actions = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for where, name in targets:
        if where.startswith("http"):
            host, port = where.removeprefix("http://").split(":")
            client = chromadb.HttpClient(host=host, port=int(port))
        else:
            client = chromadb.PersistentClient(path=where)
        for action, text in actions:
            try:
                collection = client.get_collection(name)
                if action == "query":
                    print("OK", collection.query(query_texts=[text], n_results=1)["ids"])
                else:
                    collection.add(ids=["new"], documents=[text])
                    print("OK")
            except Exception as error:
                print("ERROR", str(error).replace("\\n", " "))
    """
)


def run_plain_recipe(
    targets: list[tuple[str, str]], actions: list[tuple[str, str]], env: dict[str, str]
) -> list[str]:
    """The recipe's lines for each (database or server URL, collection) and each ("query" or
    "add", text), in that order; ``env`` is added to this process's environment."""
    completed = subprocess.run(
        [sys.executable, "-c", RECIPE, json.dumps(targets), json.dumps(actions)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip().splitlines()[-len(targets) * len(actions) :]
