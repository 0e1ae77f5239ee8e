"""A skipped file leaves nothing behind, and every file has a source of its own: after every run
the store holds exactly the chunks of the readable files' current content, one ``source`` per
file, and a second run writes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.pipeline import ingest
from youtu_rag.ingest.walk import source_name, source_path

SEGMENT_BYTES = 1 << 18  # reading.SEGMENT_CHARS: the race needs a file of two segments


class AppendsOnFirstBatch:
    """MiniLM's document encoder that, when the first batch is embedded (the file's first
    segment is being read), appends an invalid byte to ``path``: the file turns undecodable
    during its read, as when another program writes to it."""

    def __init__(self, embedder: YoutuEmbedder, path: Path) -> None:
        self._encode = embedder.encode_documents
        self._path = path
        self.fired = False

    def encode_documents(self, texts: Any) -> np.ndarray:
        if not self.fired:
            self.fired = True
            with self._path.open("ab") as handle:
                handle.write(b"\xff tail")
        return self._encode(texts)


def sources_and_counts(store: ChromaStore) -> dict[str, int]:
    got = store.collection.get(include=["metadatas"])
    counts: dict[str, int] = {}
    for metadata in got["metadatas"] or []:
        source = str((metadata or {})["source"])
        counts[source] = counts.get(source, 0) + 1
    return counts


def big_text(words: int) -> str:
    """Long words of one token each: a file of two segments in few chunks."""
    vocabulary = ["representation", "international", "understanding", "communication"]
    return " ".join(
        vocabulary[n % 4] + ("\n\n池化。" if n % 500 == 0 else "") for n in range(words)
    )


def test_a_file_that_turns_undecodable_while_read_leaves_nothing(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    racing = docs / "racing.txt"
    racing.write_text(big_text(20_000), encoding="utf-8")
    assert racing.stat().st_size > SEGMENT_BYTES
    (docs / "good.md").write_text("Masked mean pooling. 掩码平均池化。", encoding="utf-8")
    store = ChromaStore(minilm, ChromaStore.open(minilm, persist_dir=tmp_path / "db").client)

    hooked = AppendsOnFirstBatch(minilm, racing)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(minilm, "encode_documents", hooked.encode_documents)
        report = ingest(store, [docs], batch_size=16)
    assert hooked.fired and report.chunks_written > 0  # chunks of it were written mid-read...
    assert [entry.path for entry in report.skipped] == [str(racing)]
    assert "not valid UTF-8 text" in report.skipped[0].reason
    assert "indexed chunks were removed" in report.skipped[0].reason
    assert sources_and_counts(store) == {str(docs / "good.md"): 1}  # ...and none stayed

    again = ingest(store, [docs])
    assert (again.chunks_written, again.chunks_deleted) == (0, 0)
    assert [entry.path for entry in again.skipped] == [str(racing)]
    assert "removed" not in again.skipped[0].reason  # nothing was left to remove

    racing.write_text("Fixed: pooling again. 修好了。", encoding="utf-8")
    fixed = ingest(store, [docs])
    assert not fixed.skipped and fixed.changed == 1
    assert sources_and_counts(store) == {str(docs / "good.md"): 1, str(racing): 1}

    # An indexed file that becomes unreadable has its old chunks removed, and says so.
    racing.write_bytes("café crème".encode("latin-1"))
    broken = ingest(store, [docs])
    assert [entry.reason for entry in broken.skipped] == [
        "not valid UTF-8 text (byte 0xe9 at offset 3); convert it to UTF-8 (e.g. `iconv -f "
        "latin1 -t utf-8`); its 1 indexed chunk was removed"
    ]
    assert broken.chunks_deleted == 1
    assert sources_and_counts(store) == {str(docs / "good.md"): 1}


@pytest.mark.skipif(os.name != "posix", reason="file names of any bytes are a POSIX thing")
def test_undecodable_and_literal_escape_names_are_two_sources(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    raw = Path(os.fsdecode(os.fsencode(docs) + b"/bad\xff.md"))
    literal = docs / "bad\\xff.md"
    raw.write_text("The raw byte name. 原始字节。", encoding="utf-8")
    literal.write_text("The literal backslash name. 反斜杠。", encoding="utf-8")
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")

    first = ingest(store, [docs])
    assert first.changed == 2 and not first.skipped
    assert sources_and_counts(store) == {f"{docs}/bad\\xff.md": 1, f"{docs}/bad\\\\xff.md": 1}
    again = ingest(store, [docs])
    assert (again.chunks_written, again.chunks_deleted, again.unchanged) == (0, 0, 2)
    for path in (raw, literal):
        assert source_path(source_name(path)) == path
    assert source_name(docs / "plain 中文.md") == f"{docs}/plain 中文.md"
