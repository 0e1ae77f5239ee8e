"""The plain-Chroma path guards the whole fingerprint, as ``ChromaStore`` does: Chroma 1.5 only
compares the function's name when ``get_collection(name, embedding_function=...)`` is given one,
so our function compares what it embeds with what the collection records before it embeds."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest

from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.index.chroma_function import FingerprintMismatchError, YoutuEmbeddingFunction
from youtu_rag.index.store import ChromaStore

TEXTS = {
    "pool": "Masked mean pooling ignores the instruction tokens.",
    "zh": "掩码平均池化只对文本本身的词元取平均。",
}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"pooling_mode": "cls"}, "pooling 'all' vs 'cls of all'"),
        ({"query_instruction": "Given a question, find the answer"}, "query_prefix"),
        ({"document_instruction": "Represent the passage"}, "document_prefix"),
    ],
)
def test_a_different_function_is_refused_on_the_plain_path(
    minilm: YoutuEmbedder, tmp_path: Path, options: dict[str, str], named: str
) -> None:
    store = ChromaStore.open(minilm, persist_dir=tmp_path)
    store.upsert(list(TEXTS), list(TEXTS.values()))
    client = chromadb.PersistentClient(path=str(tmp_path))

    other = YoutuEmbeddingFunction(MINILM, device="cpu", **options)
    collection = client.get_collection(store.name, embedding_function=other)  # type: ignore[arg-type]
    with pytest.raises(FingerprintMismatchError, match=f"collection 'youtu_rag'.*{named}"):
        collection.query(query_texts=["池化 pooling"], n_results=1)
    with pytest.raises(FingerprintMismatchError, match=named):
        collection.add(ids=["new"], documents=["A new passage. 新段落。"])
    assert collection.count() == 2

    # The same settings pass, through a function built by hand or wrapping the embedder.
    for same in (
        YoutuEmbeddingFunction(MINILM, device="cpu"),
        YoutuEmbeddingFunction.from_embedder(minilm),
    ):
        found = client.get_collection(store.name, embedding_function=same).query(  # type: ignore[arg-type]
            query_texts=["池化"], n_results=1
        )
        assert found["ids"] == [["zh"]]
    # A collection youtu-rag did not make is the caller's business.
    plain = client.create_collection("plain", embedding_function=other)  # type: ignore[arg-type]
    plain.add(ids=["a"], documents=["text 文本"])
    assert plain.count() == 1


def test_modify_refuses_a_function_that_embeds_differently(minilm: YoutuEmbedder) -> None:
    own = YoutuEmbeddingFunction.from_embedder(minilm)
    config = own.get_config()
    own.validate_config_update(config, {**config, "batch_size": 8, "device": "cuda"})
    with pytest.raises(FingerprintMismatchError, match="pooling_mode"):
        own.validate_config_update(config, {**config, "pooling_mode": "cls"})
