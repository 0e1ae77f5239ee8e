"""A youtu-rag collection reopened by plain Chroma code: it needs `import youtu_rag` first (Chroma
finds embedding functions in a registry filled at import). Chroma's error does not say so, and
youtu-rag's own code never meets it (it passes its function explicitly), so the docs say it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.samples import passage_store
from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore

#: What Chroma 1.5 says when plain code reopens our collection in a process without youtu_rag.
UNREGISTERED_FUNCTION = "Embedding function youtu_rag not found"

PASSAGES = {
    "pool": ("Masked mean pooling averages the text tokens only.", "a.md"),
    "zh": ("向量数据库把向量存放在集合里。", "b.md"),
}
PLAIN_CHROMA = """
import sys
{first}
import chromadb
collection = chromadb.PersistentClient(path=sys.argv[1]).get_collection("youtu_rag")
print(collection.query(query_texts=["where are vectors kept?"], n_results=1)["ids"][0][0])
"""


@pytest.fixture(scope="module")
def store(minilm: YoutuEmbedder, tmp_path_factory: pytest.TempPathFactory) -> ChromaStore:
    return passage_store(minilm, tmp_path_factory.mktemp("plain"), PASSAGES)


def _plain_chroma(directory: Path, first: str) -> subprocess.CompletedProcess[str]:
    script = PLAIN_CHROMA.format(first=first)
    return subprocess.run(
        [sys.executable, "-c", script, str(directory)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def test_plain_chroma_needs_import_youtu_rag_first(store: ChromaStore, tmp_path: Path) -> None:
    directory = Path(store.client.get_settings().persist_directory)
    without = _plain_chroma(directory, "")
    assert without.returncode == 1 and UNREGISTERED_FUNCTION in without.stderr
    with_import = _plain_chroma(directory, "import youtu_rag")
    assert with_import.returncode == 0, with_import.stderr
    assert with_import.stdout.strip() == store.search("where are vectors kept?", k=1)[0].id
