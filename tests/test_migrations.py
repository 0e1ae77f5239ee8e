"""Migrations of one edit: code written for sentence-transformers, LangChain's
``HuggingFaceEmbeddings`` and LlamaIndex's ``HuggingFaceEmbedding`` runs with its import line
changed, and gives the same vectors; arguments with no counterpart are refused with the
replacement."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest
import torch

from youtu_rag import YoutuEmbedder

DOCUMENTS = [
    "Masked mean pooling averages only the text tokens of a sentence.",
    "向量数据库把向量、文档和元数据存放在集合里。",
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
QUERIES = ["What's the weather like?", "向量存放在哪里"]


def run_with(import_line: str, code: str, **names: Any) -> dict[str, Any]:
    """Run ``code`` after ``import_line``; what it leaves in ``result``."""
    namespace: dict[str, Any] = dict(names)
    exec(import_line + "\n" + textwrap.dedent(code), namespace)
    result: dict[str, Any] = namespace["result"]
    return result


def assert_same(theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    assert theirs.keys() == ours.keys()
    for key, value in theirs.items():
        if isinstance(value, int | str):
            assert ours[key] == value, key
            continue
        if isinstance(value, torch.Tensor):
            assert isinstance(ours[key], torch.Tensor), key
        mine = np.asarray(ours[key], dtype=np.float32)
        assert mine.shape == np.asarray(value).shape, key
        assert np.abs(mine - np.asarray(value, dtype=np.float32)).max() <= 2e-5, key


def assert_migrates(theirs: str, ours: str, code: str, minilm: YoutuEmbedder) -> dict[str, Any]:
    """Run ``code`` after each import line on the MiniLM checkpoint; assert the same results and
    return ours."""
    names = {"MODEL": minilm.profile.source, "DOCUMENTS": DOCUMENTS, "QUERIES": QUERIES}
    migrated = run_with(ours, code, **names)
    assert_same(run_with(theirs, code, **names), migrated)
    return migrated


SENTENCE_TRANSFORMERS = """
model = SentenceTransformer(MODEL, device="cpu", prompts={"query": "query: "})
documents = model.encode(DOCUMENTS, batch_size=2, normalize_embeddings=True)
queries = model.encode(QUERIES, prompt_name="query", convert_to_tensor=True)
result = {
    "documents": documents,
    "queries": queries,
    "one": model.encode("天气很好", prompt="query: "),
    "encode_query": model.encode_query(QUERIES),
    "encode_document": model.encode_document(DOCUMENTS, show_progress_bar=False),
    "similarity": model.similarity(queries, documents),
    "dimension": model.get_sentence_embedding_dimension(),
    "max_seq_length": model.max_seq_length,
}
"""


def test_sentence_transformers_by_the_import_line(minilm: YoutuEmbedder) -> None:
    ours = assert_migrates(
        "from sentence_transformers import SentenceTransformer",
        "from youtu_rag import SentenceTransformer",
        SENTENCE_TRANSFORMERS,
        minilm,
    )
    assert ours["one"].shape == (384,)


def test_sentence_transformers_arguments_without_a_counterpart_name_the_replacement(
    minilm: YoutuEmbedder,
) -> None:
    from youtu_rag import SentenceTransformer

    with pytest.raises(TypeError, match=r"truncate_dim .*slice and renormalise"):
        SentenceTransformer(minilm.profile.source, truncate_dim=128)
    with pytest.raises(TypeError, match=r"cache_folder .*HF_HOME"):
        SentenceTransformer(minilm.profile.source, cache_folder="/tmp/cache")
    model = SentenceTransformer(minilm.profile.source, device="cpu")
    with pytest.raises(TypeError, match=r"precision .*float32"):
        model.encode(["x"], precision="int8")
    with pytest.raises(ValueError, match="prompt_name 'query' is not among"):
        model.encode(["x"], prompt_name="query")


LANGCHAIN = """
embeddings = HuggingFaceEmbeddings(
    model_name=MODEL,
    model_kwargs={"device": "cpu"},
    encode_kwargs={"normalize_embeddings": True, "batch_size": 4},
    query_encode_kwargs={"prompt": "query: ", "batch_size": 4},
    cache_folder=None,
    multi_process=False,
    show_progress=False,
)
result = {
    "documents": embeddings.embed_documents(DOCUMENTS),
    "query": embeddings.embed_query(QUERIES[1]),
    "model_name": embeddings.model_name,
}
"""


def test_langchain_huggingface_embeddings_by_the_import_line(minilm: YoutuEmbedder) -> None:
    assert_migrates(
        "from langchain_huggingface import HuggingFaceEmbeddings",
        "from langchain_youtu import HuggingFaceEmbeddings",
        LANGCHAIN,
        minilm,
    )


def test_langchain_arguments_without_a_counterpart_name_the_replacement(
    minilm: YoutuEmbedder,
) -> None:
    from langchain_youtu import HuggingFaceEmbeddings

    model = minilm.profile.source
    with pytest.raises(ValueError, match=r"multi_process .*youtu-rag serve"):
        HuggingFaceEmbeddings(model_name=model, multi_process=True)
    with pytest.raises(ValueError, match=r"cache_folder .*HF_HUB_CACHE"):
        HuggingFaceEmbeddings(model_name=model, cache_folder="/tmp/models")
    with pytest.raises(ValueError, match=r"prompt_name.*query_instruction="):
        HuggingFaceEmbeddings(model_name=model, query_encode_kwargs={"prompt_name": "search"})


LLAMA_INDEX = """
embed_model = HuggingFaceEmbedding(
    model_name=MODEL,
    query_instruction="query: ",
    text_instruction="passage: ",
    max_length=128,
    normalize=True,
    embed_batch_size=4,
    device="cpu",
    trust_remote_code=False,
)
result = {
    "documents": embed_model.get_text_embedding_batch(DOCUMENTS),
    "query": embed_model.get_query_embedding(QUERIES[0]),
    "model_name": embed_model.model_name,
}
"""


def test_llamaindex_huggingface_embedding_by_the_import_line(minilm: YoutuEmbedder) -> None:
    assert_migrates(
        "from llama_index.embeddings.huggingface import HuggingFaceEmbedding",
        "from llama_index.embeddings.youtu import HuggingFaceEmbedding",
        LLAMA_INDEX,
        minilm,
    )


def test_llamaindex_arguments_without_a_counterpart_name_the_replacement(
    minilm: YoutuEmbedder,
) -> None:
    from llama_index.embeddings.youtu import HuggingFaceEmbedding

    model = minilm.profile.source
    with pytest.raises(ValueError, match=r"cache_folder .*HF_HUB_CACHE"):
        HuggingFaceEmbedding(model_name=model, cache_folder="/tmp/models")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"parallel_process .*youtu-rag serve"):
        HuggingFaceEmbedding(model_name=model, parallel_process=True)  # type: ignore[call-arg]
