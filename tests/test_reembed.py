"""``reembed``: a collection made by another embedding function, moved into a youtu-rag collection
with the same ids, texts and metadata and new vectors; resumable; locally and from a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from typer.testing import CliRunner

from youtu_rag import MINILM, ChromaStore, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.reembed import reembed
from youtu_rag.index.store import ModelMismatchError

runner = CliRunner()
TEXTS = {
    "en-1": "Masked mean pooling averages only the text tokens.",
    "en-2": "Stable chunk ids let a re-run skip unchanged text.",
    "zh-1": "向量数据库把向量、文档和元数据存放在集合里。",
    "zh-2": "检索增强生成把检索到的段落交给对话模型。",
    "blank": "   ",
}


class LetterCounts(EmbeddingFunction[Documents]):
    """Somebody else's embedding function: letter counts (not ours, not Chroma's default)."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        return [np.array([text.count(c) + 1.0 for c in "aeiou向量"]) for text in input]

    @staticmethod
    def name() -> str:
        return "letter_counts"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LetterCounts:
        return LetterCounts()


def make_source(client: Any, name: str = "theirs") -> Any:
    collection = client.create_collection(name, embedding_function=LetterCounts())
    collection.add(
        ids=list(TEXTS),
        documents=list(TEXTS.values()),
        metadatas=[{"lang": key[:2], "n": i} for i, key in enumerate(TEXTS)],
    )
    collection.add(ids=["vectors-only"], embeddings=[[1.0] * 7])
    return collection


def check_copy(store: ChromaStore, minilm: YoutuEmbedder) -> None:
    copied = store.collection.get(include=["documents", "metadatas", "embeddings"])
    kept = {key: text for key, text in TEXTS.items() if text.strip()}
    assert sorted(copied["ids"]) == sorted(kept)
    for record_id, text, metadata, vector in zip(
        copied["ids"], copied["documents"], copied["metadatas"], copied["embeddings"], strict=True
    ):
        assert text == kept[record_id]
        assert metadata == {"lang": record_id[:2], "n": list(TEXTS).index(record_id)}
        assert np.abs(vector - minilm.encode_documents(text)[0]).max() <= 1e-5
    # The lexical index came with it, Chinese and English.
    assert store.search("集合里", k=1, mode="lexical")[0].id == "zh-1"
    assert store.search("chunk ids", k=1, mode="lexical")[0].id == "en-2"


def test_reembed_copies_ids_texts_metadata_and_resumes(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path))
    source = make_source(client)
    # What users meet today: their collection will not open with our function.
    with pytest.raises(ModelMismatchError, match=r"letter_counts.*youtu-rag reembed theirs --to"):
        ChromaStore(minilm, client, "theirs", create=False)
    store = ChromaStore(minilm, client, "ours")
    report = reembed(source, store, page_size=2)
    assert (report.copied, report.already_there, report.without_text) == (4, 0, 2)
    check_copy(store, minilm)
    # Resumed after a stop: only what is missing or changed is embedded again.
    store.delete(["en-1"])
    source.update(ids=["zh-2"], documents=["检索增强生成把段落交给模型。"])
    changed = {**TEXTS, "zh-2": "检索增强生成把段落交给模型。"}
    again = reembed(source, store, page_size=2)
    assert (again.copied, again.already_there, again.total) == (2, 2, 4)
    got = store.collection.get(ids=["zh-2"], include=["documents"])
    assert got["documents"] == [changed["zh-2"]]
    source.update(ids=["zh-2"], documents=[TEXTS["zh-2"]])
    with pytest.raises(ValueError, match="into itself"):
        reembed(store.collection, store)


def test_reembed_command_from_a_chroma_server(
    minilm: YoutuEmbedder, chroma_server: str, tmp_path: Path
) -> None:
    remote = chromadb.HttpClient(
        host=chroma_server.split("//")[1].split(":")[0], port=int(chroma_server.rsplit(":", 1)[1])
    )
    make_source(remote, "theirs-on-server")
    target = ["--persist-dir", str(tmp_path / "db")]
    args = ["reembed", "theirs-on-server", "--to", "ours", "--from-url", chroma_server, *target]
    result = runner.invoke(app, [*args, "-m", MINILM, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["copied"], report["without_text"], report["total"]) == (4, 2, 4)
    check_copy(ChromaStore.open(minilm, persist_dir=tmp_path / "db", collection="ours"), minilm)
    again = runner.invoke(app, [*args, "--json"])  # the target remembers its model
    assert again.exit_code == 0 and json.loads(again.stdout)["already_there"] == 4
    found = runner.invoke(app, ["search", "向量存放在哪里", *target, "-c", "ours", "-k", "1"])
    assert found.exit_code == 0 and "id zh-1" in found.stdout
    missing = runner.invoke(app, ["reembed", "nope", "--to", "xyz", "--from-url", chroma_server])
    assert missing.exit_code == 1 and "'nope' does not exist" in missing.stderr
