# ruff: noqa: RUF001  (Chinese text and punctuation, on purpose)
"""The lexical index is derived data: damage to it is repaired from the collection or named in
words, never silent, and never takes dense search down. Each case is a real index on disk, hurt
the way a user's could be, then searched through the real command."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import chromadb
import pytest

from tests.cli_process import run_cli
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.index.lexical import lexical_directory
from youtu_rag.index.store import ChromaStore

COLLECTION = "repair"
DOCS = {
    "weather.md": "# 天气\n\n今天的天气很好，阳光明媚。The weather is lovely today.\n",
    "stadium.md": "# 体育场\n\n他开车去了体育场看足球比赛。He drove to the stadium.\n",
    "invoice.md": "# 报销\n\n报销发票须在三十天内提交给财务部。Submit invoices within 30 days.\n",
}


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    db = tmp_path / "db"
    result = run_cli("index", docs, *store_args(db), "--model", MINILM)
    assert result.returncode == 0, result.stderr
    return db


def store_args(db: Path) -> list[str]:
    return ["--persist-dir", str(db), "--collection", COLLECTION]


def search(
    db: Path, query: str, mode: str, user: int | None = None
) -> tuple[int, list[dict[str, object]], str]:
    result = run_cli(
        "search", query, "--mode", mode, "--json", "-k", "3", *store_args(db), user=user
    )
    hits = json.loads(result.stdout) if result.returncode == 0 else []
    return result.returncode, hits, result.stderr


def lexical_folder(db: Path) -> Path:
    return lexical_directory(db, None, COLLECTION)


def assert_found_in_every_mode(
    db: Path, query: str = "报销发票", source: str = "invoice.md"
) -> str:
    """Dense, hybrid and lexical all answer, and the two that use words rank the source first;
    returns stderr of the first lexical search (where a repair says so)."""
    code, hits, _ = search(db, query, "dense")
    assert code == 0 and hits
    code, hits, lexical_stderr = search(db, query, "lexical")
    assert code == 0, lexical_stderr
    assert str(hits[0]["source"]).endswith(source), hits
    code, hits, stderr = search(db, query, "hybrid")
    assert code == 0 and str(hits[0]["source"]).endswith(source), stderr
    assert all(hit["fallback"] is None for hit in hits)
    return lexical_stderr


def delete_meta(db: Path) -> None:
    (lexical_folder(db) / "tantivy" / "meta.json").unlink()


def delete_segments(db: Path) -> None:
    shutil.rmtree(lexical_folder(db) / "tantivy")


def garble_manifest(db: Path) -> None:
    (lexical_folder(db) / "manifest.sqlite3").write_bytes(b"not a database " * 200)


def corrupt_segments(db: Path) -> None:
    for path in (lexical_folder(db) / "tantivy").iterdir():
        if path.suffix not in (".json", ".lock"):
            path.write_bytes(b"\x00garbage" * 64)


@pytest.mark.parametrize(
    "damage", [delete_meta, delete_segments, garble_manifest, corrupt_segments]
)
def test_damage_is_repaired_from_the_collection_and_said(
    indexed: Path, damage: Callable[[Path], None]
) -> None:
    damage(indexed)
    stderr = assert_found_in_every_mode(indexed)
    assert f"the lexical index of collection {COLLECTION!r} was damaged" in stderr, stderr
    assert "rebuilt from the collection (3 chunks)" in stderr
    # Repaired for good: the next search says nothing more.
    _, _, again = search(indexed, "报销发票", "lexical")
    assert "damaged" not in again


def test_index_repairs_a_damaged_lexical_index_too(indexed: Path) -> None:
    delete_segments(indexed)
    docs = indexed.parent / "docs"
    result = run_cli("index", docs, *store_args(indexed))
    assert result.returncode == 0 and "was damaged" in result.stderr, result.stderr
    _, _, stderr = search(indexed, "体育场", "lexical")
    assert "damaged" not in stderr


def test_a_file_where_the_folder_should_be_is_named_and_dense_still_answers(
    indexed: Path,
) -> None:
    folder = lexical_folder(indexed)
    shutil.rmtree(folder)
    folder.write_text("someone else's file")
    code, hits, stderr = search(indexed, "报销发票", "dense")
    assert code == 0 and hits and "lexical" not in stderr, stderr
    code, hits, stderr = search(indexed, "报销发票", "hybrid")
    assert code == 0 and hits, stderr
    assert all(hit["lexical_rank"] is None and hit["fallback"] for hit in hits)
    assert f"{folder} is not a folder" in str(hits[0]["fallback"])
    assert "warning: hybrid search ranked by the dense side alone" in stderr
    code, _, stderr = search(indexed, "报销发票", "lexical")
    error = stderr.splitlines()[-1]
    assert code == 1
    assert error.startswith(f"error: the lexical index of collection {COLLECTION!r} is damaged")
    assert error.endswith(f"{folder} is not a folder: move it away and search again")
    assert folder.read_text() == "someone else's file"  # not ours to remove


@contextlib.contextmanager
def read_only(paths: list[Path]) -> Iterator[None]:
    """Writing under ``paths`` fails: by their modes for an ordinary user, and for root (whom
    modes do not stop) by the immutable attribute."""
    root = os.geteuid() == 0
    for path in paths:
        if root:
            subprocess.run(["chattr", "+i", str(path)], check=True)
        else:
            path.chmod(stat.S_IREAD | stat.S_IEXEC if path.is_dir() else stat.S_IREAD)
    try:
        yield
    finally:
        for path in paths:
            if root:
                subprocess.run(["chattr", "-i", str(path)], check=True)
            else:
                path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_folder_is_named_and_dense_still_answers(indexed: Path) -> None:
    folder = lexical_folder(indexed)
    shutil.rmtree(folder / "tantivy")  # needs a rebuild, which needs writing
    with read_only([folder, *folder.iterdir()]):
        code, hits, stderr = search(indexed, "报销发票", "dense")
        assert code == 0 and hits, stderr
        code, hits, stderr = search(indexed, "报销发票", "hybrid")
        assert code == 0 and hits and hits[0]["fallback"], stderr
        assert f"make {folder} writable" in str(hits[0]["fallback"])
        code, _, stderr = search(indexed, "报销发票", "lexical")
        assert code == 1 and f"make {folder} writable" in stderr.splitlines()[-1], stderr
    assert_found_in_every_mode(indexed)  # writable again: repaired


def test_texts_replaced_in_place_by_chroma_are_found_by_their_new_words(
    indexed: Path, minilm: YoutuEmbedder
) -> None:
    collection = chromadb.PersistentClient(path=str(indexed)).get_collection(COLLECTION)
    records = collection.get(include=["documents"])
    replaced = {
        id_: f"改写后的段落{number}：龚玥菲负责第{number}号合同。Rewritten clause {number}."
        for number, id_ in enumerate(records["ids"])
    }
    collection.update(
        ids=list(replaced),
        documents=list(replaced.values()),
        embeddings=minilm.encode_documents(list(replaced.values())),
    )
    for mode in ("lexical", "hybrid"):
        code, hits, stderr = search(indexed, "龚玥菲 合同", mode)
        assert code == 0, stderr
        assert {hit["id"] for hit in hits} == set(replaced)
        assert all(hit["text"] == replaced[str(hit["id"])] for hit in hits)
    # The old words are gone from the lexical side.
    code, hits, _ = search(indexed, "阳光明媚", "lexical")
    assert code == 0 and hits == []


def test_a_query_with_undecodable_bytes_is_searched_in_every_mode(indexed: Path) -> None:
    store = ChromaStore.open(
        YoutuEmbedder(MINILM), persist_dir=indexed, collection=COLLECTION, create=False
    )
    for mode in ("dense", "hybrid", "lexical"):
        hits = store.search("submit invoices 报销\udcff发票 \ud800", k=1, mode=mode)  # type: ignore[arg-type]
        assert hits and hits[0].source and hits[0].source.endswith("invoice.md"), mode
    # A byte that is not UTF-8 on the command line reaches Python as a lone surrogate.
    code, hits, stderr = search(indexed, os.fsdecode(b"\xff\xfe\xe6\x8a\xa5\xe9\x94\x80"), "hybrid")
    assert code == 0 and hits, stderr
    assert "undecodable characters" in stderr


def test_an_invalid_collection_name_leaves_nothing_behind(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("天气很好。", encoding="utf-8")
    for name in ("坏 名字", "x", "-bad", "bad[/name]"):
        db = tmp_path / "db"
        result = run_cli("index", docs, "--persist-dir", db, "--collection", name, "-m", MINILM)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"error: collection name {name!r} is not valid")
        assert not db.exists()
        with pytest.raises(ValueError, match="is not valid"):
            ChromaStore.open(YoutuEmbedder(MINILM), persist_dir=db, collection=name)
        assert not db.exists()
