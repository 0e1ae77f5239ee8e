"""`serve --default-input-type query`: a client that cannot say "this is a query" (Chroma's
OpenAIEmbeddingFunction, any OpenAI client using one model name) gets query vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

from tests.server_process import QUERY_INSTRUCTION, youtu_rag_serve
from youtu_rag import MINILM, YoutuEmbedder

QUESTIONS = ["What does masked mean pooling leave out?", "向量数据库把向量存放在哪里"]


@pytest.fixture(scope="module")
def query_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    options = ("--device", "cpu", "--threads", "1", "--query-instruction", QUERY_INSTRUCTION)
    with youtu_rag_serve(
        tmp_path_factory.mktemp("query_server"), *options, "--default-input-type", "query"
    ) as server:
        yield server.url


def test_chroma_openai_function_gets_query_vectors(
    query_server: str, minilm_instructed: YoutuEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "unused")
    function = OpenAIEmbeddingFunction(model_name=MINILM, api_base=f"{query_server}/v1")
    vectors = np.asarray(function(QUESTIONS))
    queries = minilm_instructed.encode_queries(QUESTIONS)
    np.testing.assert_allclose(vectors, queries, atol=1e-5)
    assert np.abs(vectors - minilm_instructed.encode_documents(QUESTIONS)).max() > 1e-2


def test_a_request_that_says_document_still_gets_documents(
    query_server: str, minilm_instructed: YoutuEmbedder
) -> None:
    for body in (
        {"model": MINILM, "input": QUESTIONS, "input_type": "document"},
        {"model": f"{MINILM}:document", "input": QUESTIONS},
    ):
        answer = httpx.post(f"{query_server}/v1/embeddings", json=body, timeout=60).json()
        vectors = np.asarray([row["embedding"] for row in answer["data"]])
        np.testing.assert_allclose(
            vectors, minilm_instructed.encode_documents(QUESTIONS), atol=1e-5
        )
    models = httpx.get(f"{query_server}/v1/models").json()["data"]
    assert models[0]["default_input_type"] == "query"


def test_a_wrong_default_is_refused_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from youtu_rag.cli import app

    result = CliRunner().invoke(app, ["serve", "-m", MINILM, "--default-input-type", "queries"])
    assert result.exit_code == 1
    assert result.stderr == "error: --default-input-type must be query or document, got 'queries'\n"
