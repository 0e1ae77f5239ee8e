# ruff: noqa: RUF001  (Chinese text and punctuation, on purpose)
"""Chunking rules as part of a collection's identity, on a real Chroma on disk with real MiniLM;
and the unknown-token warning of ``index`` and ``search``."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_text_splitters import RecursiveCharacterTextSplitter
from typer.testing import CliRunner, Result

from tests.cli_process import run_cli
from tests.corpora import chinese_corpus, english_corpus
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.chunking import make_chunker
from youtu_rag.ingest.pipeline import (
    ChunkingRulesError,
    chunk_id,
    document_kind,
    find_files,
    ingest,
    read_text,
)
from youtu_rag.model.tokenization import count_tokens

SIZE = {"chunk_size": 64, "chunk_overlap": 0}
runner = CliRunner()


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def index_as_before(store: ChromaStore, paths: list[Path]) -> int:
    """Index as youtu-rag did before it recorded chunking rules: LangChain's default separators,
    ids of (source, index, text), ``source`` and ``chunk`` metadata, no record."""
    tokenizer = store.embedder.backbone.tokenizer  # type: ignore[attr-defined]
    splitter = RecursiveCharacterTextSplitter(
        length_function=lambda text: count_tokens(tokenizer, text), **SIZE
    )
    written = 0
    for path in find_files(paths):
        source = str(path)
        texts = [text for text in splitter.split_text(read_text(path)) if text.strip()]
        written += store.upsert(
            [chunk_id(source, index, text) for index, text in enumerate(texts)],
            texts,
            [{"source": source, "chunk": index} for index in range(len(texts))],
        )
    return written


def stored(store: ChromaStore) -> set[tuple[str, int, str, str | None]]:
    records = store.collection.get(include=["documents", "metadatas"])
    return {
        (str(meta["source"]), int(str(meta["chunk"])), text, meta.get("section"))  # type: ignore[misc]
        for meta, text in zip(records["metadatas"] or [], records["documents"] or [], strict=True)
    }


def expected(embedder: YoutuEmbedder, paths: list[Path]) -> set[tuple[str, int, str, str | None]]:
    chunker = make_chunker(embedder, **SIZE)
    return {
        (str(path), index, chunk.text, chunk.metadata.get("section"))  # type: ignore[misc]
        for path in find_files(paths)
        for index, chunk in enumerate(chunker.split_text(read_text(path), document_kind(path)))
    }


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zh.txt").write_text(chinese_corpus(6_000, seed=1), encoding="utf-8")
    (docs / "en.txt").write_text(english_corpus(4_000, seed=2), encoding="utf-8")
    (docs / "guide.md").write_text(
        "# 指南\n\n## 安装\n\n" + chinese_corpus(1_500, seed=3), encoding="utf-8"
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "elsewhere.txt").write_text(english_corpus(1_000, seed=4), encoding="utf-8")
    return docs, other


def test_a_collection_of_other_rules_is_refused_then_rechunked_whole(
    minilm: YoutuEmbedder, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    docs, other = folders
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db", collection="rules")
    before = index_as_before(store, [docs, other])
    old = stored(store)

    with pytest.raises(ChunkingRulesError, match="--rechunk") as refused:
        ingest(store, [docs], **SIZE)
    assert "\n" not in str(refused.value) and "no recorded rules" in str(refused.value)
    assert store.count() == before and stored(store) == old and store.chunking_record() is None

    # One file changes on disk, the others do not: all are chunked anew. The other folder's
    # file is not under the paths: its chunks stay, cut under the old rules, and are counted.
    changed = docs / "zh.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "最后加了一句。", encoding="utf-8")
    kept = {record for record in old if record[0].startswith(str(other.resolve()))}
    report = ingest(store, [docs], rechunk=True, **SIZE)
    assert report.rechunked and (report.other_files, report.dropped_files) == (1, 0)
    assert (report.changed, report.unchanged) == (3, 0)
    now = stored(store)
    assert now == expected(minilm, [docs]) | kept  # no chunk of the old rules under docs
    assert report.chunks_deleted == len(old - kept) - len((old - kept) & now)
    assert report.total_chunks == len(now) == store.count()
    assert store.chunking_record() == make_chunker(minilm, **SIZE).rules.to_record()
    assert any(section == "指南 > 安装" for *_, section in now)
    # Indexed again, the other folder is chunked under the recorded (new) rules.
    ingest(store, [other], **SIZE)
    assert stored(store) == expected(minilm, [docs, other])
    ingest(store, [docs], rechunk=True, drop_others=True, **SIZE)  # same rules: drops nothing
    assert stored(store) == expected(minilm, [docs, other])
    store.delete(store.ids_where({"source": str((other / "elsewhere.txt").resolve())}))
    now = stored(store)

    again = ingest(store, [docs], **SIZE)
    assert (again.chunks_written, again.chunks_deleted, again.unchanged) == (0, 0, 3)
    asked_again = ingest(store, [docs], rechunk=True, **SIZE)
    assert (asked_again.chunks_written, asked_again.chunks_deleted) == (0, 0)
    assert not asked_again.rechunked
    assert stored(store) == now

    # Other options are other rules too; reopened from disk, the record holds.
    reopened = ChromaStore.open(minilm, persist_dir=tmp_path / "db", collection="rules")
    with pytest.raises(ChunkingRulesError, match=r"RecursiveCharacterTextSplitter.*--rechunk"):
        ingest(reopened, [docs], chunk_size=48, chunk_overlap=0)
    with pytest.raises(ChunkingRulesError):
        ingest(reopened, [docs], separators="latin", **SIZE)
    assert stored(reopened) == now


def test_drop_others_names_the_other_files_before_removing_them(
    minilm: YoutuEmbedder, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    docs, other = folders
    db = tmp_path / "db"
    index_as_before(ChromaStore.open(minilm, persist_dir=db, collection="drop"), [docs, other])
    common = ["--persist-dir", db, "--collection", "drop", "--chunk-size", "64"]
    refused = run("index", docs, *common, "--drop-others", "--chunk-overlap", "0")
    assert refused.exit_code == 1 and "--drop-others goes with --rechunk" in refused.stderr
    result = run_cli("index", docs, *common, "--chunk-overlap", "0", "--rechunk", "--drop-others")
    assert result.returncode == 0, result.stderr
    elsewhere = str((other / "elsewhere.txt").resolve())
    warning = next(line for line in result.stderr.splitlines() if "--drop-others" in line)
    assert warning.startswith("warning: removing the chunks of 1 files") and elsewhere in warning
    assert "1 files not under PATHS removed (--drop-others)" in result.stdout
    store = ChromaStore.open(minilm, persist_dir=db, collection="drop")
    assert not store.ids_where({"source": elsewhere})
    assert stored(store) == expected(minilm, [docs])


def test_a_new_collection_records_its_rules_and_takes_a_given_splitter(
    minilm: YoutuEmbedder, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    docs, _ = folders
    store = ChromaStore.open(minilm, persist_dir=tmp_path / "db", collection="given")
    splitter = RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=0)
    report = ingest(store, [docs], splitter=splitter)
    assert report.chunks_written > 0
    record = store.chunking_record()
    assert record is not None and "langchain_text_splitters" in record and '"size":300' in record
    texts = {text for _, _, text, _ in stored(store)}
    assert max(len(text) for text in texts) <= 300
    with pytest.raises(ValueError, match="splitter itself"):
        ingest(store, [docs], splitter=splitter, chunk_size=10)
    with pytest.raises(ChunkingRulesError):
        ingest(store, [docs])  # the default rules are not the given splitter's


def test_cli_refuses_in_one_line_and_rechunks_with_counts(
    minilm: YoutuEmbedder, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    docs, other = folders
    db = tmp_path / "cli_db"
    store = ChromaStore.open(minilm, persist_dir=db, collection="docs")
    index_as_before(store, [docs, other])
    common = [docs, "-m", MINILM, "--persist-dir", db, "-c", "docs", "--chunk-size", "64"]
    refused = run("index", *common, "--chunk-overlap", "0")
    assert refused.exit_code == 1
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--rechunk" in errors[0]
    rechunked = run("index", *common, "--chunk-overlap", "0", "--rechunk")
    assert rechunked.exit_code == 0, rechunked.output
    assert (
        "Re-chunked 'docs' under the new chunking rules: 3 files chunked anew; 1 files not under "
        "PATHS keep chunks cut under the old rules until they are indexed again"
    ) in " ".join(rechunked.stdout.split())
    again = run("index", *common, "--chunk-overlap", "0")
    assert "0 chunks written, 0 removed" in again.stdout
    bad = run("index", *common, "--separators", "klingon")
    assert bad.exit_code == 1 and "cjk" in bad.output
    info = run("info", "--persist-dir", db, "-c", "docs", "--json")
    assert '\\"version\\":\\"2\\"' in info.stdout


def test_unknown_tokens_are_counted_by_the_model(minilm: YoutuEmbedder) -> None:
    chinese = YoutuEmbedder(MINILM)
    chinese.encode_documents(["今天我们去了博物馆，看到了很多珍贵的青铜器。"])
    assert chinese.unknown_tokens().fraction > 0.5
    english = YoutuEmbedder(MINILM)
    english.encode_queries(["What is the weather like today?"])
    assert english.unknown_tokens().unknown == 0 and english.unknown_tokens().total > 5


def test_index_and_search_warn_when_the_model_cannot_read_the_text(tmp_path: Path) -> None:
    zh = tmp_path / "zh"
    zh.mkdir()
    (zh / "a.txt").write_text(chinese_corpus(3_000, seed=5), encoding="utf-8")
    en = tmp_path / "en"
    en.mkdir()
    (en / "a.txt").write_text(english_corpus(3_000, seed=5), encoding="utf-8")
    db = tmp_path / "db"
    # The warning is the embedder's own log line: a process of its own shows it as users see it.
    chinese = run_cli("index", zh, "-m", MINILM, "--persist-dir", db, "-c", "zh-docs")
    assert chinese.returncode == 0, chinese.stderr
    assert chinese.stderr.count("warning:") == 1
    assert "could not read" in chinese.stderr and "% of the text it was given" in chinese.stderr
    english = run_cli("index", en, "-m", MINILM, "--persist-dir", db, "-c", "en-docs")
    assert english.returncode == 0 and "warning" not in english.stderr
    found = run_cli("search", "珍贵的青铜器", "-m", MINILM, "--persist-dir", db, "-c", "en-docs")
    assert found.returncode == 0 and "could not read" in found.stderr
    plain = run_cli("search", "bronze vessels", "-m", MINILM, "--persist-dir", db, "-c", "en-docs")
    assert plain.returncode == 0 and "warning" not in plain.stderr
