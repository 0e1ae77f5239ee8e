"""Ingest against hostile folders: bad encodings, binary files, corrupt PDFs, odd names, symlinks
in and out of the root, a stop request; real MiniLM, real Chroma on disk."""

from __future__ import annotations

import codecs
import itertools
import logging
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.samples import pdf_pages
from tests.test_ingest import CHUNKING
from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest import reading
from youtu_rag.ingest.formats import open_parts
from youtu_rag.ingest.pipeline import (
    IngestReport,
    find_files,
    ingest,
    make_chunker,
    read_text,
)
from youtu_rag.ingest.reading import UnreadableFileError, open_segments
from youtu_rag.ingest.walk import source_name

LATIN1 = "Crème brûlée, café au lait et pâté: le déjeuner à Besançon."
TEXT = "Masked mean pooling leaves the instruction tokens out of the average."


def stored(store: ChromaStore) -> dict[str, list[tuple[int, str]]]:
    """source -> [(chunk index, text)] as stored, sorted by index."""
    records = store.collection.get(include=["documents", "metadatas"])
    by_source: dict[str, list[tuple[int, str]]] = {}
    for metadata, text in zip(records["metadatas"] or [], records["documents"] or [], strict=True):
        by_source.setdefault(str(metadata["source"]), []).append(
            (int(str(metadata["chunk"])), text)
        )
    return {source: sorted(chunks) for source, chunks in by_source.items()}


def expected_chunks(embedder: YoutuEmbedder, path: Path) -> list[str]:
    chunker = make_chunker(embedder, **CHUNKING)
    return [chunk.text for chunk in chunker.split_parts(open_parts(path))]


def skipped(report: IngestReport) -> dict[str, str]:
    return {entry.path: entry.reason for entry in report.skipped}


def test_encodings_are_decoded_or_refused_never_garbled(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bom.txt").write_bytes(codecs.BOM_UTF8 + LATIN1.encode())
    (docs / "utf16.txt").write_bytes(LATIN1.encode("utf-16"))  # with its byte-order mark
    (docs / "utf16be.txt").write_bytes(codecs.BOM_UTF16_BE + LATIN1.encode("utf-16-be"))
    (docs / "utf32.txt").write_bytes(LATIN1.encode("utf-32"))
    for name in ("bom.txt", "utf16.txt", "utf16be.txt", "utf32.txt"):
        assert read_text(docs / name) == LATIN1, name

    (docs / "latin1.txt").write_bytes(LATIN1.encode("latin-1"))
    with pytest.raises(
        UnreadableFileError, match=r"not valid UTF-8 text \(byte 0xe8 at offset 2\)"
    ):
        read_text(docs / "latin1.txt")
    (docs / "binary.md").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(UnreadableFileError, match="binary file"):
        read_text(docs / "binary.md")
    # Valid UTF-8, but control codes: binary all the same.
    (docs / "controls.txt").write_bytes(bytes(range(1, 32)) * 20)
    with pytest.raises(UnreadableFileError, match="control codes"):
        read_text(docs / "controls.txt")
    # A bad byte far past the first block: the file is refused before any text is handed out.
    (docs / "late.txt").write_bytes(b"fine text. " * 20_000 + b"\xff")
    with pytest.raises(UnreadableFileError, match="offset 220000"):
        open_segments(docs / "late.txt")


def test_segments_are_bounded_and_cut_at_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "SEGMENT_CHARS", 1000)
    paragraphs = [f"Paragraph {i} " + "word " * (i % 37) for i in range(400)]
    text = "\n\n".join(paragraphs)
    path = tmp_path / "long.md"
    path.write_text(text, encoding="utf-8")
    segments = list(open_segments(path))
    assert "".join(segments) == text
    assert len(segments) > 20 and max(map(len, segments)) <= 1000
    assert all(segment.endswith("\n\n") for segment in segments[:-1])


def test_bad_files_are_skipped_named_and_the_rest_is_indexed(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text(TEXT, encoding="utf-8")
    (docs / "latin1.txt").write_bytes(LATIN1.encode("latin-1"))
    (docs / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (docs / "truncated.pdf").write_bytes(pdf_pages(TEXT)[:300])
    (docs / "paper.pdf").write_bytes(pdf_pages(TEXT))
    unreadable = docs / "locked.txt"
    unreadable.write_text(TEXT, encoding="utf-8")
    odd = os.fsdecode(os.fsencode(docs) + b"/caf\xe9-\xff.txt")  # not UTF-8: any bytes go on Linux
    Path(odd).write_text("Notes with a name that is not UTF-8.", encoding="utf-8")
    os.mkfifo(docs / "pipe.txt")  # reading it would block the run for ever
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")

    unreadable.chmod(0)
    try:
        readable_anyway = os.access(unreadable, os.R_OK)  # root reads everything
        report = ingest(store, [docs], **CHUNKING)
    finally:
        unreadable.chmod(0o644)

    reasons = skipped(report)
    root = str(docs.resolve())
    assert reasons.pop(f"{root}/latin1.txt").startswith("not valid UTF-8 text (byte 0xe8")
    assert reasons.pop(f"{root}/binary.txt") == "binary file (it contains NUL bytes)"
    assert reasons.pop(f"{root}/truncated.pdf").startswith("not a readable PDF (")
    assert reasons.pop(f"{root}/pipe.txt") == "not a regular file"
    if not readable_anyway:
        assert reasons.pop(f"{root}/locked.txt") == "cannot read it (Permission denied)"
    assert reasons == {}
    odd_source = f"{root}/caf\\xe9-\\xff.txt"
    sources = set(stored(store))
    assert {f"{root}/good.md", f"{root}/paper.pdf", odd_source} <= sources
    assert store.search("a name that is not UTF-8", k=1)[0].source == odd_source
    assert report.files == 7  # every supported regular file, the skipped ones included

    again = ingest(store, [docs], **CHUNKING)
    assert again.chunks_written == 0 and len(again.skipped) == len(report.skipped)


def test_symlinks_stay_inside_the_roots_and_prune_follows_them(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("The outside secret is swordfish.", encoding="utf-8")
    (outside / "folder").mkdir()
    (outside / "folder" / "leak.md").write_text("Leaked through a folder link.", encoding="utf-8")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "real.md").write_text(TEXT, encoding="utf-8")
    (docs / "notes.md").symlink_to(outside / "secret")  # the suffix is on the link only
    (docs / "folder").symlink_to(outside / "folder")
    (docs / "alias.md").symlink_to(docs / "sub" / "real.md")  # inside: followed, read once
    (docs / "again").symlink_to(docs / "sub")  # a folder inside, reached twice
    (docs / "sub" / "loop").symlink_to(docs)  # a cycle
    (docs / "gone.md").symlink_to(docs / "missing.md")
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")

    report = ingest(store, [docs], **CHUNKING)
    root = docs.resolve()
    away = "outside the indexed folders"
    assert skipped(report) == {
        f"{root}/notes.md": f"symbolic link to {outside.resolve()}/secret, {away}",
        f"{root}/folder": f"symbolic link to {outside.resolve()}/folder, {away}",
        f"{root}/gone.md": "broken symbolic link",
    }
    assert list(stored(store)) == [f"{root}/sub/real.md"]
    assert report.files == 1 and report.chunks_written == len(stored(store)[f"{root}/sub/real.md"])
    assert find_files([docs, docs / "alias.md"]) == [root / "sub" / "real.md"]
    # A named file is what the run was given, so a link to it from the folder is followed.
    (docs / "secret.md").symlink_to(outside / "folder" / "leak.md")
    both = find_files([docs, outside / "folder" / "leak.md"])
    assert both == [root / "sub" / "real.md", (outside / "folder" / "leak.md").resolve()]

    # The target is deleted: the link dangles, and prune removes the chunks it led to.
    (docs / "sub" / "real.md").unlink()
    pruned = ingest(store, [docs], **CHUNKING, prune=True)
    assert pruned.pruned_files == 1 and store.count() == 0


def test_a_stop_request_keeps_what_was_written_and_a_rerun_continues(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(3):
        paragraphs = (f"File {number} paragraph {i}. {TEXT}" for i in range(60))
        (docs / f"f{number}.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
    expected = {
        source_name(path): list(enumerate(expected_chunks(minilm, path)))
        for path in find_files([docs])
    }
    total = sum(map(len, expected.values()))
    assert total > 2 * minilm.batch_size
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db")
    already = threading.Event()
    already.set()  # a stop before anything was embedded writes nothing
    assert ingest(store, [docs], **CHUNKING, stop=already).interrupted and store.count() == 0

    stop = threading.Event()

    class StopAfterFirstWrite(logging.Handler):  # as if Ctrl-C came during the first batch
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("wrote"):
                stop.set()

    logger = logging.getLogger("youtu_rag.ingest.pipeline")
    handler, level = StopAfterFirstWrite(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        first = ingest(store, [docs], **CHUNKING, stop=stop)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert first.interrupted
    assert first.chunks_written == store.count() == minilm.batch_size
    # What is stored is the first chunks in order, each exactly as a full run writes it.
    flat = [(source, chunk) for source, chunks in expected.items() for chunk in chunks]
    assert sorted(
        (source, chunk) for source, chunks in stored(store).items() for chunk in chunks
    ) == sorted(flat[: minilm.batch_size])

    second = ingest(store, [docs], **CHUNKING)
    assert not second.interrupted
    assert second.chunks_written == total - minilm.batch_size
    assert stored(store) == expected and store.count() == total


# --- generated folder trees ----------------------------------------------------------------------

KINDS = ("utf8", "utf16", "latin1", "binary", "empty", "large", "pdf", "corrupt_pdf")
GOOD = {"utf8", "utf16", "large", "pdf"}
BAD = {"latin1", "binary", "corrupt_pdf"}
LINKS = ("in_file", "in_dir", "out_file", "out_dir", "dangling")
# Raw name bytes, non-UTF-8 ones included; no separators, NULs or dots (no hidden files).
NAMES = st.binary(min_size=1, max_size=6).map(
    lambda raw: bytes(b for b in raw if b not in b"/\x00.") or b"x"
)
FOLDERS = st.sampled_from([b"", b"sub/", b"sub/deeper/"])
TREES = st.fixed_dictionaries(
    {
        "files": st.lists(
            st.tuples(FOLDERS, NAMES, st.sampled_from(KINDS)), min_size=1, max_size=6
        ),
        "links": st.lists(st.tuples(st.sampled_from(LINKS), NAMES), max_size=3),
    }
)
_cases = itertools.count()


def content(kind: str, serial: int) -> bytes:
    words = f"File number {serial} speaks of pooling, retrieval and chunk {serial * 7}."
    if kind == "utf8":
        return f"{words} Ünïcödé ✓ 中文.".encode()
    if kind == "utf16":
        return f"{words} Ünïcödé ✓.".encode("utf-16")
    if kind == "latin1":
        return f"{words} Crème brûlée.".encode("latin-1")
    if kind == "binary":
        return bytes(range(256)) + serial.to_bytes(4, "big")
    if kind == "large":  # several segments: SEGMENT_CHARS is lowered in the test
        return "\n\n".join(f"{words} Part {part}." for part in range(120)).encode()
    if kind == "pdf":
        return pdf_pages(words)
    if kind == "corrupt_pdf":
        return pdf_pages(words)[: 40 + serial * 13]
    return b""


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=TREES)
def test_generated_trees(
    tree: dict[str, list[tuple[bytes, bytes, str]]],
    minilm: YoutuEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Invariants: every good file's chunks are stored and searchable, nothing from outside the
    root is, every bad file and refused link is reported, and a re-run writes nothing."""
    monkeypatch.setattr(reading, "SEGMENT_CHARS", 1500)
    base = (tmp_path / f"case{next(_cases)}").resolve()
    root, outside = base / "root", base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "out.md").write_text("Swordfish lives outside the root.", encoding="utf-8")
    (outside / "out.txt").write_text("Swordfish lives outside the root.", encoding="utf-8")
    root.mkdir()
    raw_root = os.fsencode(root)
    files: dict[str, tuple[Path, str]] = {}  # source -> (path, kind)
    for serial, (folder, name, kind) in enumerate(tree["files"]):
        suffix = b".pdf" if kind.endswith("pdf") else b".txt"
        raw = raw_root + b"/" + folder + name + b"-%d" % serial + suffix
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        with open(raw, "wb") as handle:
            handle.write(content(kind, serial))
        path = Path(os.fsdecode(raw))
        files[source_name(path)] = (path, kind)
    targets = {
        "in_file": next(iter(files.values()))[0],
        "in_dir": root / "sub",
        "out_file": outside / "out.txt",
        "out_dir": outside / "dir",
        "dangling": root / "nothing-here.md",
    }
    expected_skips = {source for source, (_, kind) in files.items() if kind in BAD}
    for serial, (link_kind, name) in enumerate(tree["links"]):  # type: ignore[misc]
        link = Path(os.fsdecode(raw_root + b"/" + name + b"-link%d.md" % serial))
        link.symlink_to(targets[link_kind])
        if link_kind.startswith("out") or not targets[link_kind].exists():
            expected_skips.add(source_name(link))

    store = ChromaStore.open(minilm, persist_dir=base / "db")
    report = ingest(store, [root], **CHUNKING)

    assert {entry.path for entry in report.skipped} == expected_skips
    assert report.empty == sum(kind == "empty" for _, kind in files.values())
    contents = stored(store)
    assert all(source.startswith(source_name(root) + "/") for source in contents)
    assert not any("Swordfish" in text for chunks in contents.values() for _, text in chunks)
    good = {source for source, (_, kind) in files.items() if kind in GOOD}
    assert set(contents) == good
    for source, chunks in contents.items():
        assert chunks == list(enumerate(expected_chunks(minilm, files[source][0])))
    for source, chunks in list(contents.items())[:2]:
        assert store.search(chunks[-1][1], k=1)[0].source == source

    again = ingest(store, [root], **CHUNKING)
    assert again.chunks_written == again.chunks_deleted == 0
    assert (again.unchanged, len(again.skipped)) == (len(good), len(expected_skips))
    assert store.count() == sum(map(len, contents.values()))
