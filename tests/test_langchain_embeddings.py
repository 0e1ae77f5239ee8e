"""YoutuEmbeddings: LangChain's standard suites, equality with the core, and a Chroma round trip."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_chroma import Chroma
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from langchain_youtu import YoutuEmbeddings
from pydantic import ValidationError

from youtu_rag import MINILM, YOUTU_EMBEDDING, YoutuEmbedder

REPO = Path(__file__).resolve().parents[1]
INSTRUCTION = "Given a question about the weather, find the sentence that answers it"
QUERIES = ["What's the weather like?", "结算业务系统用户使用", "sky"]
DOCUMENTS = [
    "The weather is lovely today.",
    "查询出该时间范围内到期的账户冻结列表。" * 5,
    "He drove to the stadium.",
    "x",
]
CORPUS = {
    "cats": "Cats purr when they are content and knead soft blankets with their paws.",
    "stocks": "The stock market fell sharply on Monday after the central bank raised rates.",
    "plants": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "football": "The striker scored twice in the second half to win the cup final.",
}
QUESTIONS = {
    "How do plants make food from light?": "plants",
    "Why did share prices drop?": "stocks",
    "Who won the soccer match?": "football",
}


class TestYoutuEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[YoutuEmbeddings]:
        return YoutuEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MINILM, "device": "cpu"}


class TestYoutuEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[YoutuEmbeddings]:
        return YoutuEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MINILM, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny(tiny_youtu_dir: str) -> YoutuEmbeddings:
    return YoutuEmbeddings(
        model=tiny_youtu_dir, device="cpu", batch_size=2, query_instruction=INSTRUCTION
    )


@pytest.fixture(scope="module")
def tiny_core(tiny_youtu_dir: str) -> YoutuEmbedder:
    return YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=2, query_instruction=INSTRUCTION)


def test_vectors_equal_the_core(tiny: YoutuEmbeddings, tiny_core: YoutuEmbedder) -> None:
    documents = tiny.embed_documents(DOCUMENTS)
    queries = [tiny.embed_query(query) for query in QUERIES]
    assert all(type(value) is float for value in documents[0] + queries[0])
    assert np.abs(np.asarray(documents) - tiny_core.encode_documents(DOCUMENTS)).max() <= 1e-6
    assert np.abs(np.asarray(queries) - tiny_core.encode_queries(QUERIES)).max() <= 1e-6
    # The instruction reaches queries only.
    assert np.abs(np.asarray(queries) - tiny_core.encode_documents(QUERIES)).max() > 1e-3


async def test_async_vectors_equal_the_core(
    tiny: YoutuEmbeddings, tiny_core: YoutuEmbedder
) -> None:
    documents = await tiny.aembed_documents(DOCUMENTS)
    query = await tiny.aembed_query(QUERIES[0])
    assert np.abs(np.asarray(documents) - tiny_core.encode_documents(DOCUMENTS)).max() <= 1e-6
    assert np.abs(np.asarray(query) - tiny_core.encode_queries(QUERIES[:1])[0]).max() <= 1e-6


async def test_async_runs_the_model_off_the_event_loop(tiny_youtu_dir: str) -> None:
    embeddings = YoutuEmbeddings(model=tiny_youtu_dir, device="cpu")
    embedder = embeddings.embedder
    threads: list[int] = []
    real_documents, real_queries = embedder.encode_documents, embedder.encode_queries

    def recording_documents(texts: Any) -> np.ndarray:
        threads.append(threading.get_ident())
        return real_documents(texts)

    def recording_queries(texts: Any) -> np.ndarray:
        threads.append(threading.get_ident())
        return real_queries(texts)

    embedder.encode_documents = recording_documents  # type: ignore[method-assign]
    embedder.encode_queries = recording_queries  # type: ignore[method-assign]
    await asyncio.gather(embeddings.aembed_documents(DOCUMENTS), embeddings.aembed_query("sky"))
    assert len(threads) == 2
    assert threading.get_ident() not in threads


def test_instances_share_one_loaded_model(tiny_youtu_dir: str, tiny: YoutuEmbeddings) -> None:
    # By field name as well as by the alias (mypy only knows the alias).
    other = YoutuEmbeddings(model_name=tiny_youtu_dir, device="cpu", query_instruction="")  # type: ignore[call-arg]
    assert other.embedder is not tiny.embedder
    assert other.embedder.backbone is tiny.embedder.backbone
    assert other.embedder.query_prefix == "" != tiny.embedder.query_prefix


def test_fields_are_checked_and_frozen(tiny: YoutuEmbeddings, tiny_youtu_dir: str) -> None:
    assert YoutuEmbeddings.model_fields["model_name"].default == YOUTU_EMBEDDING
    assert tiny.model_name == tiny.embedder.model_name == tiny_youtu_dir
    with pytest.raises(ValidationError):
        YoutuEmbeddings(model=MINILM, device="cpu", batch_size=0)
    with pytest.raises(ValidationError):
        YoutuEmbeddings(model=MINILM, device="cpu", normalize=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        tiny.batch_size = 4


def test_bad_input_is_named_by_index(tiny: YoutuEmbeddings) -> None:
    with pytest.raises(ValueError, match="index 1"):
        tiny.embed_documents(["fine", " \n"])
    with pytest.raises(TypeError, match="index 0"):
        tiny.embed_query(None)  # type: ignore[arg-type]


def test_chroma_round_trip(tmp_path: Path) -> None:
    embeddings = YoutuEmbeddings(model=MINILM, device="cpu")
    settings: dict[str, Any] = {
        "collection_name": "langchain_youtu",
        "embedding_function": embeddings,
        "persist_directory": str(tmp_path),
        "collection_configuration": {"hnsw": {"space": "cosine"}},
    }
    store = Chroma(**settings)
    store.add_texts(list(CORPUS.values()), metadatas=[{"key": k} for k in CORPUS], ids=list(CORPUS))

    reopened = Chroma(**settings)
    stored = reopened.get(ids=list(CORPUS), include=["embeddings"])
    by_id = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    expected = embeddings.embedder.encode_documents(list(CORPUS.values()))
    assert np.abs(np.stack([by_id[key] for key in CORPUS]) - expected).max() <= 1e-6

    for question, key in QUESTIONS.items():
        [(document, score)] = reopened.similarity_search_with_relevance_scores(question, k=1)
        assert document.id == key and document.metadata == {"key": key}
        assert document.page_content == CORPUS[key]
        query = embeddings.embedder.encode_queries([question])[0]
        assert score == pytest.approx(float(query @ by_id[key]), abs=1e-5)


def test_works_without_llama_index() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["llama_index"] = None  # as if the llamaindex extra were not installed
        from langchain_youtu import YoutuEmbeddings
        vector = YoutuEmbeddings(model={MINILM!r}, device="cpu").embed_query("hello")
        assert len(vector) == 384 and isinstance(vector[0], float)
        assert not any(name.startswith("llama_index.") for name in sys.modules), sorted(
            name for name in sys.modules if name.startswith("llama_index")
        )
        print("ok")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("ok")
