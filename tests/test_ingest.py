"""Ingestion into real Chroma with real MiniLM: stable ids, re-runs, replacement, prune, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from tests.samples import pdf_pages
from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.pipeline import (
    chunk_id,
    chunk_limit,
    document_kind,
    find_files,
    ingest,
    make_chunker,
    make_splitter,
    read_text,
)

REPO = Path(__file__).resolve().parents[1]
TOPICS = [
    "Chroma keeps vectors and documents in collections.",
    "Masked mean pooling ignores the instruction tokens.",
    "A retriever returns the passages closest to a question.",
    "Chunks are measured in the model's own tokens.",
    "Stable ids make re-indexing cheap and safe.",
]
# Small chunks so that every file yields several.
CHUNKING: dict[str, Any] = {"chunk_size": 40, "chunk_overlap": 0}


def document(name: str, version: int = 1, paragraphs: int = 4) -> str:
    return "\n\n".join(
        f"{name} v{version} part {part}. {TOPICS[part % len(TOPICS)]} "
        f"{TOPICS[(part + 1) % len(TOPICS)]}"
        for part in range(paragraphs)
    )


def write_folder(root: Path, names: list[str], version: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_text(document(name, version), encoding="utf-8")
    return root


def expected_chunks(embedder: YoutuEmbedder, root: Path) -> set[tuple[str, int, str]]:
    """(source, index, text) of every chunk the files under ``root`` should have."""
    chunks = set()
    for path in find_files([root]):
        chunker = make_chunker(embedder, **CHUNKING)
        for index, chunk in enumerate(chunker.split_text(read_text(path), document_kind(path))):
            chunks.add((str(path), index, chunk.text))
    return chunks


def stored_chunks(store: ChromaStore) -> list[tuple[str, int, str]]:
    records = store.collection.get(include=["documents", "metadatas"])
    return [
        (str(metadata["source"]), int(str(metadata["chunk"])), text)
        for metadata, text in zip(
            records["metadatas"] or [], records["documents"] or [], strict=True
        )
    ]


@pytest.fixture
def store(minilm: YoutuEmbedder, tmp_path: Path) -> ChromaStore:
    return ChromaStore.open(minilm, persist_dir=tmp_path / "db")


def test_find_files(tmp_path: Path) -> None:
    write_folder(tmp_path / "docs", ["b.md", "a.txt"])
    write_folder(tmp_path / "docs" / "nested", ["c.markdown"])
    write_folder(tmp_path / "docs" / ".git", ["hidden.md"])
    (tmp_path / "docs" / "script.py").write_text("print()")
    found = find_files([tmp_path / "docs", tmp_path / "docs" / "a.txt"])
    docs = (tmp_path / "docs").resolve()
    assert found == [docs / "a.txt", docs / "b.md", docs / "nested" / "c.markdown"]
    with pytest.raises(ValueError, match="unsupported file type"):
        find_files([tmp_path / "docs" / "script.py"])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_files([tmp_path / "missing"])


def test_chunks_fit_the_model(minilm: YoutuEmbedder) -> None:
    limit = chunk_limit(minilm)
    assert limit < minilm.max_length
    text = "\n\n".join(" ".join(TOPICS) * 3 for _ in range(20))
    chunks = make_splitter(minilm).split_text(text)
    assert len(chunks) > 1
    tokenizer = minilm.backbone.tokenizer
    assert all(len(tokenizer(chunk)["input_ids"]) <= minilm.max_length for chunk in chunks)
    assert max(len(tokenizer.tokenize(chunk)) for chunk in chunks) > limit // 2
    with pytest.raises(ValueError, match=f"between 1 and {limit} tokens"):
        make_splitter(minilm, chunk_size=limit + 1)
    with pytest.raises(ValueError, match="overlap"):
        make_splitter(minilm, chunk_size=40, chunk_overlap=40)


def test_chunk_ids_are_stable_and_distinct() -> None:
    assert chunk_id("/a.md", 0, "text") == chunk_id("/a.md", 0, "text")
    variants = {
        chunk_id("/a.md", 0, "text"),
        chunk_id("/b.md", 0, "text"),
        chunk_id("/a.md", 1, "text"),
        chunk_id("/a.md", 0, "other"),
    }
    assert len(variants) == 4


def test_index_then_rerun_writes_nothing(
    store: ChromaStore, minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    docs = write_folder(tmp_path / "docs", ["a.md", "b.txt", "c.md"])
    expected = expected_chunks(minilm, docs)
    first = ingest(store, [docs], **CHUNKING, batch_size=5)
    assert (first.files, first.changed, first.chunks_written) == (3, 3, len(expected))
    assert sorted(stored_chunks(store)) == sorted(expected)
    ids = set(store.collection.get(include=[])["ids"])

    again = ingest(store, [docs], **CHUNKING)
    assert (again.unchanged, again.changed, again.chunks_written, again.chunks_deleted) == (
        3,
        0,
        0,
        0,
    )
    assert again.total_chunks == len(expected)
    assert set(store.collection.get(include=[])["ids"]) == ids


def test_changed_file_leaves_no_stale_chunk(
    store: ChromaStore, minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    docs = write_folder(tmp_path / "docs", ["a.md", "b.txt"])
    ingest(store, [docs], **CHUNKING)
    (docs / "a.md").write_text(document("a.md", version=2, paragraphs=2), encoding="utf-8")
    report = ingest(store, [docs], **CHUNKING)
    assert (report.changed, report.unchanged) == (1, 1)
    assert report.chunks_deleted > 0
    stored = stored_chunks(store)
    assert sorted(stored) == sorted(expected_chunks(minilm, docs))
    assert not [text for _, _, text in stored if "a.md v1" in text]
    assert store.search("a.md v2 part 1", k=1)[0].source == str((docs / "a.md").resolve())


def test_empty_files_are_skipped_and_counted(store: ChromaStore, tmp_path: Path) -> None:
    docs = write_folder(tmp_path / "docs", ["a.md", "b.txt"])
    (docs / "empty.txt").write_text(" \n\n ", encoding="utf-8")
    report = ingest(store, [docs], **CHUNKING)
    assert (report.files, report.empty, report.changed) == (3, 1, 2)
    # A file emptied since the last run loses its chunks.
    (docs / "b.txt").write_text("", encoding="utf-8")
    report = ingest(store, [docs], **CHUNKING)
    assert (report.empty, report.unchanged) == (2, 1)
    assert str((docs / "b.txt").resolve()) not in store.sources()


def test_prune_removes_deleted_files_under_the_given_paths_only(
    store: ChromaStore, tmp_path: Path
) -> None:
    docs = write_folder(tmp_path / "docs", ["a.md", "b.txt"])
    other = write_folder(tmp_path / "other", ["c.md"])
    ingest(store, [docs, other], **CHUNKING)
    (docs / "b.txt").unlink()
    gone = str((docs / "b.txt").resolve())

    kept = ingest(store, [docs], **CHUNKING)
    assert kept.pruned_files == 0 and gone in store.sources()

    pruned = ingest(store, [docs], **CHUNKING, prune=True)
    assert pruned.pruned_files == 1 and pruned.chunks_deleted > 0
    assert store.sources() == {str((docs / "a.md").resolve()), str((other / "c.md").resolve())}


def test_pdf_text_is_indexed(store: ChromaStore, tmp_path: Path) -> None:
    pdf = tmp_path / "docs" / "paper.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes(pdf_pages("Masked mean pooling ignores the instruction tokens."))
    assert "Masked mean pooling" in read_text(pdf)
    report = ingest(store, [pdf])
    assert report.chunks_written == 1
    assert store.search("pooling", k=1)[0].source == str(pdf.resolve())


# The subprocess writes its first batch of new chunks, then announces it and hangs where it would
# delete the chunks they replace: the worst moment to die, killed there for certain.
CRASHING_INGEST = textwrap.dedent(
    """
    import sys, time
    from youtu_rag import MINILM, YoutuEmbedder
    from youtu_rag.ingest.pipeline import ingest
    from youtu_rag.index.store import ChromaStore

    def hang(self, ids):
        print("WROTE FIRST BATCH", flush=True)
        time.sleep(600)

    ChromaStore.delete = hang
    store = ChromaStore.open(YoutuEmbedder(MINILM, device="cpu"), persist_dir=sys.argv[1])
    ingest(store, [sys.argv[2]], chunk_size=40, chunk_overlap=0, batch_size=4)
    print("FINISHED", flush=True)
    """
)


def test_reindex_killed_midway_then_rerun(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    names = [f"doc{i}.md" for i in range(6)]
    docs = write_folder(tmp_path / "docs", names)
    db = tmp_path / "db"
    ingest(ChromaStore.open(minilm, persist_dir=db), [docs], **CHUNKING)
    SharedSystemClient.clear_system_cache()  # the subprocess owns the database for a while

    write_folder(docs, names, version=2)
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_INGEST, str(db), str(docs)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "WROTE FIRST BATCH"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    store = ChromaStore.open(minilm, persist_dir=db)
    texts = [text for _, _, text in stored_chunks(store)]
    # Killed midway: some new chunks are in, and the old ones they replace are still there.
    assert any(" v2 " in text for text in texts) and any(" v1 " in text for text in texts)

    report = ingest(store, [docs], **CHUNKING)
    expected = expected_chunks(minilm, docs)
    stored = stored_chunks(store)
    assert report.total_chunks == store.count() == len(expected)
    assert len(set(stored)) == len(stored) and sorted(stored) == sorted(expected)
    assert not [text for _, _, text in stored if " v1 " in text]
    hit = store.search("doc3.md v2 part 2", k=1)[0]
    assert hit.source == str((docs / "doc3.md").resolve())
