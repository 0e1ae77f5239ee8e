# ruff: noqa: RUF001  (Chinese text holds full-width punctuation on purpose)
"""Hybrid retrieval: the lexical index beside a collection, fused with the dense ranking, and
kept in step with the collection whoever writes to it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import chromadb
import pytest
from langchain_chroma import Chroma
from langchain_youtu import YoutuEmbeddings
from langchain_youtu import YoutuRetriever as LangChainRetriever
from llama_index.embeddings.youtu import YoutuRetriever

from tests.conftest import running_chroma
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.index.fusion import Fusion, reciprocal_rank_fusion
from youtu_rag.index.lexical import CACHE_DIR_ENV, LexicalIndex, lexical_directory
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.pipeline import ingest

# The answer shares one rare name (and the thing bought) with the question and little meaning;
# the others are about the question's topic (repairs under guarantee) in other words.
RARE_TERM_CORPUS = {
    "code": "龚玥菲昨天在北京买了一台冰箱。",
    "warranty": "本店所有电器两年内免费维修。",
    "repair": "如果手机坏了，可以去售后中心免费修理。",
    "return": "商品七天内可以无理由退货，退货运费由买家承担。",
    "battery": "笔记本电脑的电池质保一年，人为损坏不在质保范围内。",
}
RARE_TERM_QUERY = "龚玥菲买的冰箱保修多久？"


def _open(path: Path, minilm: YoutuEmbedder, name: str = "hybrid") -> ChromaStore:
    return ChromaStore.open(minilm, persist_dir=path, collection=name)


def _fill(store: ChromaStore, corpus: dict[str, str], source: str = "faq.md") -> None:
    store.upsert(list(corpus), list(corpus.values()), [{"source": source}] * len(corpus))


def _assert_in_step(store: ChromaStore, marker: str) -> set[str]:
    """The lexical index holds exactly the collection's chunks, and a lexical search for a word
    every chunk has returns exactly them: no missing, stale or phantom id."""
    current = set(store.collection.get(include=[])["ids"])
    found = {hit.id for hit in store.search(marker, k=1000, mode="lexical")}
    assert found == current
    assert store.lexical is not None
    assert store.lexical.index.ids() == current  # and the index itself holds nothing else
    return current


def test_a_rare_code_is_found_by_lexical_and_hybrid_but_not_by_dense(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    store = _open(tmp_path / "db", minilm)
    _fill(store, RARE_TERM_CORPUS)
    dense = store.search(RARE_TERM_QUERY, k=5, mode="dense")
    lexical = store.search(RARE_TERM_QUERY, k=5, mode="lexical")
    hybrid = store.search(RARE_TERM_QUERY, k=5, mode="hybrid")
    assert dense[0].id != "code"
    assert lexical[0].id == "code"
    assert hybrid[0].id == "code"
    top = hybrid[0]
    assert top.lexical_rank == 1 and top.lexical_score == lexical[0].score
    assert top.dense_rank == 1 + [hit.id for hit in dense].index("code")
    assert top.dense_score == pytest.approx(dense[top.dense_rank - 1].score, abs=1e-6)
    assert top.score == pytest.approx(1 / 61 + 1 / (60 + top.dense_rank))


def test_a_chinese_query_matches_chinese_text_through_bigrams(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    store = _open(tmp_path / "db", minilm)
    _fill(store, RARE_TERM_CORPUS)
    hits = store.search("退货运费", k=5, mode="lexical")
    assert [hit.id for hit in hits] == ["return"]
    assert [hit.id for hit in store.search("售后中心在哪里", k=5, mode="lexical")] == ["repair"]
    english = store.search("Where are the vectors kept?", k=5, mode="lexical")
    assert english == []  # no term in common: lexical finds nothing, and says so


def test_a_where_that_excludes_the_best_lexical_match_excludes_it_from_hybrid(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    store = _open(tmp_path / "db", minilm)
    _fill(store, {"code": RARE_TERM_CORPUS["code"]}, source="boxes.md")
    _fill(store, {k: v for k, v in RARE_TERM_CORPUS.items() if k != "code"})
    assert store.search(RARE_TERM_QUERY, k=5)[0].id == "code"
    hits = store.search(RARE_TERM_QUERY, k=5, where={"source": "faq.md"})
    assert hits and "code" not in {hit.id for hit in hits}
    assert {hit.source for hit in hits} == {"faq.md"}
    only = store.search(RARE_TERM_QUERY, k=5, mode="lexical", where={"source": "boxes.md"})
    assert [hit.id for hit in only] == ["code"]


def test_fusion_weights_and_candidates(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    store = _open(tmp_path / "db", minilm)
    _fill(store, RARE_TERM_CORPUS)
    dense_only = store.search(RARE_TERM_QUERY, k=5, fusion=Fusion(lexical_weight=0))
    dense = store.search(RARE_TERM_QUERY, k=5, mode="dense")
    assert [hit.id for hit in dense_only] == [hit.id for hit in dense]
    lexical_first = store.search(RARE_TERM_QUERY, k=5, fusion=Fusion(dense_weight=0))
    assert lexical_first[0].id == "code" and lexical_first[0].score == pytest.approx(1 / 61)
    assert reciprocal_rank_fusion([(["a", "b"], 1.0), (["b", "c"], 2.0)], k=0) == [
        ("b", 1 / 2 + 2 / 1),
        ("a", 1.0),
        ("c", 2 / 2),
    ]
    with pytest.raises(ValueError, match="mode"):
        store.search("x", mode="sparse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MMR"):
        store.search("x", mode="lexical", mmr=True)


def test_mmr_in_hybrid_mode(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    store = _open(tmp_path / "db", minilm)
    store.upsert(
        ["a", "a2", "b"],
        [
            "Chroma stores embedding vectors on disk.",
            "Chroma stores embedding vectors on disk!",
            "Bananas are a yellow fruit, vectors of potassium.",
        ],
    )
    plain = [hit.id for hit in store.search("Where are vectors kept?", k=2)]
    diverse = [hit.id for hit in store.search("Where are vectors kept?", k=2, mmr=True)]
    assert sorted(plain) == ["a", "a2"]
    assert diverse[0] in ("a", "a2") and diverse[1] == "b"


def _write_files(folder: Path, count: int, word: str = "youtu") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (folder / f"note{number:03d}.md").write_text(
            f"{word} note {number}: 第{number}号文件讲的是检索。\n\nCode Z-{number} and more.\n",
            encoding="utf-8",
        )


def test_in_step_after_an_edit_and_a_prune(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _write_files(folder, 3)
    store = _open(tmp_path / "db", minilm)
    ingest(store, [folder])
    before = _assert_in_step(store, "youtu")
    assert store.search("Z-1", k=1, mode="lexical")[0].metadata["source"].endswith("note001.md")
    (folder / "note001.md").write_text("youtu 改写后的内容：保险理赔 Q-77。\n", encoding="utf-8")
    ingest(store, [folder])
    after = _assert_in_step(store, "youtu")
    assert after != before
    assert all(hit.id in after for hit in store.search("Z-1", k=10, mode="lexical"))
    assert store.search("Q-77", k=1, mode="lexical")[0].text.startswith("youtu 改写后")
    (folder / "note002.md").unlink()
    ingest(store, [folder], prune=True)
    remaining = _assert_in_step(store, "youtu")
    assert len(remaining) == 2
    gone = store.search("Z-2", k=5, mode="lexical")
    assert gone and all(not hit.metadata["source"].endswith("note002.md") for hit in gone)
    # A fresh open of the same directory finds the index as it was left.
    assert _assert_in_step(_open(tmp_path / "db", minilm), "youtu") == remaining


def test_in_step_with_writes_through_langchain_chroma(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    store = _open(tmp_path / "db", minilm)
    _fill(store, {"ours": "youtu 我们写入的段落。"})
    langchain = Chroma(
        client=store.client,
        collection_name=store.name,
        embedding_function=YoutuEmbeddings(model=MINILM, device="cpu"),
    )
    added = langchain.add_texts(["youtu 别人写入的段落 K-42。", "youtu another writer's passage."])
    # The same open store notices the other client's writes before its next search.
    assert store.search("K-42", k=1, mode="lexical")[0].id == added[0]
    _assert_in_step(store, "youtu")
    langchain.delete([added[1]])
    _assert_in_step(store, "youtu")
    # Replaced in place under the same id: the changed text is re-indexed when it is a hit.
    langchain.add_texts(["youtu 改过的段落 M-9。"], ids=[added[0]])
    assert store.search("youtu", k=5, mode="lexical")
    assert store.search("M-9", k=1, mode="lexical")[0].id == added[0]
    assert store.search("K-42", k=5, mode="lexical") == []
    # A store opened later (a new process) reconciles on opening.
    langchain.add_texts(["youtu 后来写入的 P-5。"])
    reopened = _open(tmp_path / "db", minilm)
    assert reopened.lexical is not None
    assert reopened.lexical.index.ids() == set(reopened.collection.get(include=[])["ids"])
    assert "P-5" in reopened.search("P-5", k=1, mode="lexical")[0].text


def test_in_step_on_a_chroma_server(
    minilm: YoutuEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    with running_chroma(tmp_path / "server") as (_, url):
        store = ChromaStore.open(minilm, url=url, collection="hybrid")
        assert store.lexical is not None
        assert store.lexical.index.directory == lexical_directory(None, url, "hybrid")
        assert str(store.lexical.index.directory).startswith(str(tmp_path / "cache"))
        _fill(store, {key: "youtu " + text for key, text in RARE_TERM_CORPUS.items()})
        assert store.search(RARE_TERM_QUERY, k=1)[0].id == "code"
        other = chromadb.HttpClient(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
        langchain = Chroma(
            client=other,
            collection_name="hybrid",
            embedding_function=YoutuEmbeddings(model=MINILM, device="cpu"),
        )
        added = langchain.add_texts(["youtu 服务器上别人写的 S-1。"])
        langchain.delete(["battery"])
        current = set(store.collection.get(include=[])["ids"])
        found = {hit.id for hit in store.search("youtu", k=100, mode="lexical")}
        assert found == current and added[0] in found and "battery" not in found
        assert store.lexical.index.ids() == current
        # Texts replaced in place (same ids, same count): a full comparison of texts finds them.
        other.get_collection("hybrid").update(
            ids=["warranty", "repair"], documents=["youtu 换了 W-1。", "youtu 换了 R-2。"]
        )
        store.lexical.ensure_in_sync(compare_texts=True)
        assert [hit.id for hit in store.search("R-2", k=1, mode="lexical")] == ["repair"]
        assert [hit.id for hit in store.search("W-1", k=1, mode="lexical")] == ["warranty"]
        assert store.search("售后中心", k=5, mode="lexical") == []


_KILLED_INDEXER = textwrap.dedent(
    """
    import sys
    from youtu_rag import MINILM, YoutuEmbedder
    from youtu_rag.ingest.pipeline import ingest
    from youtu_rag.index.store import ChromaStore

    store = ChromaStore.open(YoutuEmbedder(MINILM, device="cpu", batch_size=2),
                             persist_dir=sys.argv[1], collection="hybrid")
    while True:  # until killed: index, then write the same files again
        ingest(store, [sys.argv[2]], batch_size=2)
        store.delete(store.collection.get(include=[])["ids"])
    """
)


def _dirty(manifest: Path) -> bool:
    connection = sqlite3.connect(manifest, timeout=0.1)
    try:
        row = connection.execute("SELECT value FROM state WHERE key = 'dirty'").fetchone()
    except sqlite3.OperationalError:  # not made yet, or locked by the writer this instant
        return False
    finally:
        connection.close()
    return row == ("1",)


def test_in_step_after_a_kill_minus_9_mid_index_and_a_rerun(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    _write_files(folder, 12)
    database = tmp_path / "db"
    manifest = lexical_directory(database, None, "hybrid") / "manifest.sqlite3"
    script = tmp_path / "indexer.py"
    script.write_text(_KILLED_INDEXER, encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(database), str(folder)], env=environment
    )
    try:
        # Kill it while a change to the lexical index is under way (marked, not committed).
        deadline = time.monotonic() + 300
        while child.poll() is None and time.monotonic() < deadline:
            if manifest.is_file() and _dirty(manifest):
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    store = _open(database, minilm)  # the cut-short change is noticed: rebuilt from the record
    _assert_in_step(store, "youtu")
    report = ingest(store, [folder])  # the re-run finishes the job
    assert report.total_chunks == 12
    ids = _assert_in_step(store, "youtu")
    assert len(ids) == 12
    assert store.search("Z-7", k=1, mode="lexical")[0].metadata["source"].endswith("note007.md")


def test_retrievers_return_the_stores_ids(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    store = _open(tmp_path / "db", minilm)
    _fill(store, RARE_TERM_CORPUS)
    for mode in ("hybrid", "dense", "lexical"):
        expected = [hit.id for hit in store.search(RARE_TERM_QUERY, k=3, mode=mode)]  # type: ignore[arg-type]
        nodes = YoutuRetriever(store, k=3, mode=mode).retrieve(RARE_TERM_QUERY)  # type: ignore[arg-type]
        assert [node.node.node_id for node in nodes] == expected
        documents = LangChainRetriever(store=store, k=3, mode=mode).invoke(RARE_TERM_QUERY)  # type: ignore[arg-type]
        assert [document.id for document in documents] == expected
    top = YoutuRetriever(store, k=1).retrieve(RARE_TERM_QUERY)[0]
    assert top.node.metadata["lexical_rank"] == 1 and top.node.metadata["source"] == "faq.md"
    filtered = YoutuRetriever(store, k=5, where={"source": "nowhere.md"}).retrieve("质保")
    assert filtered == []


def test_cli_search_modes(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    store = _open(tmp_path / "db", minilm, name="youtu_rag")
    _fill(store, RARE_TERM_CORPUS)
    del store
    results = {}
    for mode in ("hybrid", "dense", "lexical"):
        completed = subprocess.run(
            [sys.executable, "-m", "youtu_rag", "search", RARE_TERM_QUERY, "--mode", mode,
             "--model", MINILM, "--device", "cpu", "--persist-dir", str(tmp_path / "db"),
             "-k", "2", "--json"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        results[mode] = json.loads(completed.stdout)
    assert results["lexical"][0]["id"] == "code" and results["hybrid"][0]["id"] == "code"
    assert results["hybrid"][0]["lexical_rank"] == 1
    assert results["dense"][0]["lexical_rank"] is None


def test_an_index_sees_what_another_process_committed(tmp_path: Path) -> None:
    writer, reader = LexicalIndex(tmp_path), LexicalIndex(tmp_path)
    writer.rebuild("collection", [("a", "hello world"), ("b", "你好世界")])
    assert [hit.id for hit in reader.search("世界", 5)] == ["b"]
    writer.apply([("c", "zebra crossing")], deletes=["a"])
    assert [hit.id for hit in reader.search("zebra hello", 5)] == ["c"]
    assert reader.ids() == {"b", "c"} and reader.is_valid_for("collection")
    assert not reader.is_valid_for("another collection")
