"""The Tencent Cloud backend through the real SDK, Chroma, CLI and adapters.

STAND-IN: Tencent Cloud's GetEmbedding service cannot be reached from here, so these tests run
against ``tests/tencent_cloud_standin.py``, a local server that verifies the SDK's
TC3-HMAC-SHA256 signature with a test key, enforces the documented limits and returns
deterministic vectors. It is the only stand-in in the test suite; the SDK, its signing, its HTTP
and everything of ours around it are real.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from typer.testing import CliRunner

from tests import tencent_cloud_standin as standin_module
from tests.tencent_cloud_standin import MAX_CHARACTERS, MAX_INPUTS, SECRET_ID, SECRET_KEY
from youtu_rag import MINILM, TencentCloudEmbedder, TencentCloudError, YoutuEmbedder
from youtu_rag.backends.destinations import ALLOWED_DESTINATIONS_ENV, DestinationRefusedError
from youtu_rag.backends.protocol import create_embedder
from youtu_rag.cli import app
from youtu_rag.index.chroma_function import YoutuEmbeddingFunction
from youtu_rag.index.store import ChromaStore, ModelMismatchError, connect, describe, fingerprint
from youtu_rag.model.instructions import CMTEB_INSTRUCTIONS, format_prefix
from youtu_rag.serve.process import stop_process

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = REPO / "examples" / "sample_docs"
V1 = "lke-text-embedding-v1"
V2 = "lke-text-embedding-v2"
WRONG_KEY = "wrong-key-9d41c7e2b0a85f36"
runner = CliRunner()


class StandIn:
    """The running stand-in: where it listens, and its control and log endpoints."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.endpoint + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def reset(self) -> None:
        self._post("/_standin/reset", {})

    def control(self, *, fail: list[str | int] | None = None, delay: float = 0.0) -> None:
        self._post("/_standin/control", {"fail": fail or [], "delay": delay})

    def log(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + "/_standin/log", timeout=10) as answer:
            log: dict[str, Any] = json.load(answer)
            return log

    def embedder(self, model: str = V1, **options: Any) -> TencentCloudEmbedder:
        options = {"secret_id": SECRET_ID, "secret_key": SECRET_KEY, **options}
        return TencentCloudEmbedder(model, endpoint=self.endpoint, **options)


@pytest.fixture(scope="module")
def standin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The stand-in as its own process on 127.0.0.1, on a port it picks; stopped by PID."""
    errors = tmp_path_factory.mktemp("standin") / "stderr.log"
    with errors.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.tencent_cloud_standin"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the stand-in did not start: {line}{errors.read_text()}")
        yield StandIn(int(line.split()[-1]))
    finally:
        stop_process(server)
        server.stdout.close()


@pytest.fixture
def standin(standin_server: StandIn) -> StandIn:
    standin_server.reset()
    return standin_server


@pytest.fixture
def cloud_env(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """Credentials and endpoint in the environment, as a CLI or adapter user sets them."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("YOUTU_RAG_TENCENT_CLOUD_ENDPOINT", standin.endpoint)
    return standin


def expected(
    texts: list[str], text_type: str = "document", instruction: str = "", model: str = V1
) -> np.ndarray:
    """The stand-in's vectors as the embedder returns them: unit float32 rows."""
    rows = np.asarray(
        [standin_module.vector(model, text_type, instruction, text) for text in texts]
    )
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def mixed_documents() -> list[str]:
    """30 documents from a few words to past the 2000-character limit, Chinese included."""
    words = ["masked", "mean", "pooling", "keeps", "only", "the", "text", "tokens", "of", "every"]
    documents = []
    for i in range(30):
        length = [3, 40, 150, 420][i % 4] if i % 10 != 7 else 700
        text = " ".join(words[(i + j) % len(words)] for j in range(length))
        documents.append(f"文档 {i}: {text}" if i % 5 == 0 else f"doc {i}: {text}")
    return documents


# --- calls, limits, order ---------------------------------------------------------------------


def test_documents_go_in_calls_of_at_most_seven_within_the_limits(
    standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    documents = mixed_documents()
    long = [text for text in documents if len(text) > MAX_CHARACTERS]
    assert 0 < len(long) < len(documents)
    standin.control(delay=0.3)  # calls overlap, so the concurrency bound is exercised
    embedder = standin.embedder(concurrency=3)
    with caplog.at_level(logging.WARNING, logger="youtu_rag"):
        vectors = embedder.encode_documents(documents)

    log = standin.log()
    calls = log["calls"]
    assert len(calls) == log["received"] == 5  # ceil(30 / 7), nothing refused or retried
    assert all(len(call["Inputs"]) <= MAX_INPUTS for call in calls)
    assert all(len(text) <= MAX_CHARACTERS for call in calls for text in call["Inputs"])
    assert {(call["Model"], call["TextType"], call.get("Instruction")) for call in calls} == {
        (V1, "document", None)
    }
    assert {call["Region"] for call in calls} == {"ap-guangzhou"}
    sent = [text[:MAX_CHARACTERS] for text in documents]
    assert Counter(text for call in calls for text in call["Inputs"]) == Counter(sent)
    assert 2 <= log["max_in_flight"] <= 3

    assert vectors.dtype == np.float32 and vectors.shape == (30, standin_module.DIMENSION)
    np.testing.assert_allclose(vectors, expected(sent), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    warnings = [r.getMessage() for r in caplog.records if "characters" in r.getMessage()]
    assert warnings == [f"{len(long)} of 30 texts exceed 2000 characters and were truncated"]
    assert embedder.dimension == standin_module.DIMENSION
    assert embedder.total_tokens == sum(len(standin_module._WORD.findall(text)) for text in sent)


def test_queries_carry_the_instruction_where_the_model_honours_it(
    standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    queries = ["what does masked mean pooling keep?", "which tokens are dropped?"]
    task = CMTEB_INSTRUCTIONS["MedicalRetrieval"].task
    instructed = standin.embedder(V1, query_instruction="MedicalRetrieval")
    assert instructed.query_prefix == format_prefix(task)
    vectors = instructed.encode_queries(queries)
    plain = standin.embedder(V1).encode_queries(queries)
    with caplog.at_level(logging.WARNING, logger="youtu_rag"):
        v2 = standin.embedder(V2, query_instruction="MedicalRetrieval")
    assert v2.query_prefix == ""
    assert f"{V2} ignores instructions" in caplog.text
    v2_vectors = v2.encode_queries(queries)

    calls = standin.log()["calls"]
    assert [(c["Model"], c["TextType"], c.get("Instruction")) for c in calls] == [
        (V1, "query", format_prefix(task)),
        (V1, "query", None),
        (V2, "query", None),
    ]
    np.testing.assert_allclose(vectors, expected(queries, "query", format_prefix(task)), atol=1e-6)
    np.testing.assert_allclose(plain, expected(queries, "query"), atol=1e-6)
    np.testing.assert_allclose(v2_vectors, expected(queries, "query", model=V2), atol=1e-6)
    # The instruction and the query type reach the vectors.
    documents = instructed.encode_documents(queries)
    assert np.abs(vectors - plain).max() > 1e-2 and np.abs(plain - documents).max() > 1e-2


# --- retries and errors -----------------------------------------------------------------------


def test_rate_limits_and_server_errors_are_retried(standin: StandIn) -> None:
    embedder = standin.embedder(concurrency=1)
    standin.control(fail=["RequestLimitExceeded", "RequestLimitExceeded"])
    np.testing.assert_allclose(embedder.encode_documents(["a b", "c d"]), expected(["a b", "c d"]))
    assert standin.log()["received"] == 3
    standin.control(fail=[503, "InternalError", "RequestLimitExceeded.UinLimitExceeded"])
    np.testing.assert_allclose(embedder.encode_documents(["e f"]), expected(["e f"]))
    assert standin.log()["received"] == 3 + 4


def test_more_failures_than_max_retries_raise_a_clear_error(standin: StandIn) -> None:
    embedder = standin.embedder(max_retries=2)
    standin.control(fail=["RequestLimitExceeded"] * 3)
    with pytest.raises(TencentCloudError) as caught:
        embedder.encode_documents(["a b"])
    assert caught.value.code == "RequestLimitExceeded"
    assert "failed after 3 attempts: RequestLimitExceeded" in str(caught.value)
    assert standin.log()["received"] == 3


def test_auth_and_parameter_errors_are_raised_at_once(standin: StandIn) -> None:
    with pytest.raises(TencentCloudError) as caught:
        standin.embedder(secret_key=WRONG_KEY).encode_documents(["a b"])
    message = str(caught.value)
    assert caught.value.code == "AuthFailure.SignatureFailure"
    assert message.startswith(f"Tencent Cloud GetEmbedding ({V1}) failed: AuthFailure.")
    assert "TENCENTCLOUD_SECRET_KEY" in message and WRONG_KEY not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is not None  # suppressed
    with pytest.raises(TencentCloudError, match=r"AuthFailure\.SecretIdNotFound"):
        standin.embedder(secret_id="AKIDunknown").encode_documents(["a b"])
    with pytest.raises(TencentCloudError, match="InvalidParameterValue: Model must be"):
        standin.embedder("lke-text-embedding-v9").encode_documents(["a b"])
    assert standin.log()["received"] == 3  # one attempt each, no retry


def test_bad_arguments_and_missing_credentials(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    without = TencentCloudEmbedder(V1, endpoint=standin.endpoint)  # Chroma may build it so
    with pytest.raises(ValueError, match="set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"):
        without.encode_documents(["a b"])
    with pytest.raises(ValueError, match="invalid Tencent Cloud credentials"):
        TencentCloudEmbedder(V1, secret_id=SECRET_ID)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        standin.embedder(concurrency=0)
    with pytest.raises(ValueError, match="contradicts protocol"):
        standin.embedder(protocol="https")
    with pytest.raises(ValueError, match="device cannot be set for tencent-cloud:"):
        create_embedder(f"tencent-cloud:{V1}", device="cuda", secret_id="x", secret_key="y")
    with pytest.raises(ValueError, match="text at index 1 is empty"):
        standin.embedder().encode_documents(["fine", "  "])
    assert standin.log()["received"] == 0


def test_without_the_sdk_the_core_still_imports_and_works(tmp_path: Path) -> None:
    """A fresh interpreter where the SDK cannot be imported, as without the extra."""
    script = f"""
import importlib.abc, sys

class NoSdk(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tencentcloud":
            raise ImportError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, NoSdk())
import youtu_rag, youtu_rag.cli, youtu_rag.index.store
from youtu_rag import MINILM, TencentCloudEmbedder, YoutuEmbedder
from youtu_rag.index.store import ChromaStore
store = ChromaStore.open(YoutuEmbedder(MINILM, device="cpu"), persist_dir={str(tmp_path)!r})
store.upsert(["a"], ["Chroma stores vectors."])
assert store.search("vector database", k=1)[0].id == "a"
try:
    TencentCloudEmbedder(secret_id="x", secret_key="y")
except ImportError as error:
    print(error)
"""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("pip install 'youtu-rag[tencent-cloud]'")


# --- store guard, Chroma function, adapters ---------------------------------------------------


def test_store_records_the_backend_and_refuses_mixing(
    standin: StandIn, minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    cloud = standin.embedder()
    client = connect(tmp_path / "db")
    ChromaStore(minilm, client, "local").upsert(["a"], ["Chroma stores vectors."])
    remote = ChromaStore(cloud, client, "remote")
    remote.upsert(["a"], ["Chroma stores vectors."])
    metadata = remote.collection.metadata or {}
    assert {key: metadata[key] for key in fingerprint(cloud)} == {
        "youtu_rag:backend": "tencent-cloud",
        "youtu_rag:model": f"tencent-cloud:{V1}",
        "youtu_rag:dimension": standin_module.DIMENSION,
        "youtu_rag:query_prefix": "",
        "youtu_rag:document_prefix": "",
        "youtu_rag:pooling": "api",
    }
    assert describe(client, "remote").backend == "tencent-cloud"
    assert describe(client, "local").backend == "local"
    for embedder, name, other in [(cloud, "local", minilm), (minilm, "remote", cloud)]:
        with pytest.raises(ModelMismatchError) as caught:
            ChromaStore(embedder, client, name)
        message = str(caught.value)
        assert other.model_name in message and embedder.model_name in message
        assert f"backend {other.backend!r} vs {embedder.backend!r}" in message


def test_a_collection_from_before_backends_were_recorded_is_local(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    client = connect(tmp_path / "db")
    old = {k: v for k, v in fingerprint(minilm).items() if k != "youtu_rag:backend"}
    client.create_collection(
        "old", configuration={"hnsw": {"space": "cosine"}}, metadata=old, embedding_function=None
    )
    assert ChromaStore(minilm, client, "old").count() == 0
    assert describe(client, "old").backend == "local"


def test_chroma_function_and_adapters_take_the_model_string(
    cloud_env: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_youtu import YoutuEmbeddings
    from llama_index.embeddings.youtu import YoutuEmbedding

    model = f"tencent-cloud:{V1}"
    texts = ["masked mean pooling", "chroma stores vectors"]
    documents, queries = expected(texts), expected(texts, "query")

    function = YoutuEmbeddingFunction(model, query_instruction="")
    np.testing.assert_allclose(np.asarray(function(texts)), documents, atol=1e-6)
    np.testing.assert_allclose(np.asarray(function.embed_query(texts)), queries, atol=1e-6)
    config = function.get_config()
    assert config == {
        "model_name_or_path": model,
        "region": "ap-guangzhou",
        "endpoint": cloud_env.endpoint.removeprefix("http://"),
        "protocol": "http",
        "query_instruction": None,
        "concurrency": 4,
        "max_retries": 5,
        "timeout": 60,
    }
    stored = json.loads(json.dumps(config))
    with pytest.raises(DestinationRefusedError, match=ALLOWED_DESTINATIONS_ENV):
        YoutuEmbeddingFunction.build_from_config(stored)  # the stand-in is not the public API
    rebuilt = YoutuEmbeddingFunction.build_from_config(
        stored, allowed_destinations=[cloud_env.endpoint]
    )
    assert rebuilt.get_config() == config

    langchain = YoutuEmbeddings(model=model)
    np.testing.assert_allclose(langchain.embed_documents(texts), documents, atol=1e-6)
    np.testing.assert_allclose(langchain.embed_query(texts[0]), queries[0], atol=1e-6)
    llama = YoutuEmbedding(model_name=model)
    np.testing.assert_allclose(llama.get_text_embedding_batch(texts), documents, atol=1e-6)
    np.testing.assert_allclose(llama.get_query_embedding(texts[1]), queries[1], atol=1e-6)
    with pytest.raises(ValueError, match="dtype cannot be set"):
        YoutuEmbeddings(model=model, dtype="bfloat16")

    # Plain Chroma rebuilds the function from the stored config and embeds a query by text.
    store = ChromaStore.open(create_embedder(model), persist_dir=tmp_path / "db")
    store.upsert(["pool", "chroma"], texts)
    collection = chromadb.PersistentClient(str(tmp_path / "db")).get_collection(store.name)
    with pytest.raises(ValueError, match=DestinationRefusedError.__name__ + "|did not name"):
        collection.query(query_texts=["chroma vectors"], n_results=1)
    monkeypatch.setenv(ALLOWED_DESTINATIONS_ENV, cloud_env.endpoint)
    assert collection.query(query_texts=["chroma vectors"], n_results=1)["ids"] == [["chroma"]]


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_index_and_search_with_the_api_and_the_guard_both_ways(
    cloud_env: StandIn, tmp_path: Path
) -> None:
    model = f"tencent-cloud:{V1}"
    docs = tmp_path / "docs"
    docs.mkdir()
    for source in SAMPLE_DOCS.iterdir():
        (docs / source.name).write_text(source.read_text())
    (docs / "long.txt").write_text("\n\n".join(["Retrieval needs chunks. " * 40] * 6))
    db = tmp_path / "db"

    index = runner.invoke(app, ["index", str(docs), "--model", model, "--persist-dir", str(db)])
    assert index.exit_code == 0, index.output
    assert "Indexed 6 files into 'youtu_rag': 6 new or changed" in index.stdout
    calls = cloud_env.log()["calls"]
    inputs = [text for call in calls if call["Inputs"] != ["dimension"] for text in call["Inputs"]]
    assert all(call["TextType"] == "document" for call in calls)
    assert all(len(call["Inputs"]) <= MAX_INPUTS for call in calls)
    assert len(inputs) > 6 and max(len(text) for text in inputs) <= MAX_CHARACTERS

    search = runner.invoke(
        app, ["search", "masked mean pooling", "--json", "-m", model, "--persist-dir", str(db)]
    )
    assert search.exit_code == 0, search.output
    hits = json.loads(search.stdout)
    assert hits[0]["source"] == str((docs / "masked-pooling.md").resolve())
    assert cloud_env.log()["calls"][-1]["TextType"] == "query"
    info = json.loads(runner.invoke(app, ["info", "--json", "--persist-dir", str(db)]).stdout)
    assert (info["backend"], info["model"], info["count"]) == ("tencent-cloud", model, len(inputs))

    local = runner.invoke(app, ["search", "pooling", "-m", MINILM, "--persist-dir", str(db)])
    assert local.exit_code == 1
    assert f"was built with model '{model}', not '{MINILM}'" in local.stderr

    other = tmp_path / "local-db"
    built = runner.invoke(
        app, ["index", str(SAMPLE_DOCS), "-m", MINILM, "--persist-dir", str(other)]
    )
    assert built.exit_code == 0, built.output
    remote = runner.invoke(app, ["search", "pooling", "-m", model, "--persist-dir", str(other)])
    assert remote.exit_code == 1
    assert f"was built with model '{MINILM}', not '{model}'" in remote.stderr

    too_long = runner.invoke(
        app, ["index", str(docs), "-m", model, "--persist-dir", str(db), "--chunk-size", "3000"]
    )
    assert too_long.exit_code == 1
    assert "chunk size must be between 1 and 2000 characters" in too_long.stderr


# --- secrets ----------------------------------------------------------------------------------


def test_the_secret_is_in_no_log_repr_error_or_stored_config(
    cloud_env: StandIn, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's request log included
    embedder = create_embedder(f"tencent-cloud:{V1}", max_retries=1)
    store = ChromaStore.open(embedder, persist_dir=tmp_path / "db")
    store.upsert(["a"], ["masked mean pooling"])
    store.search("pooling", k=1)
    cloud_env.control(fail=["RequestLimitExceeded"] * 2)
    errors: list[BaseException] = []
    with pytest.raises(TencentCloudError) as exhausted:
        embedder.encode_documents(["x y"])
    errors.append(exhausted.value)
    with pytest.raises(TencentCloudError) as refused:
        TencentCloudEmbedder(V1, secret_key=WRONG_KEY).encode_documents(["x y"])
    errors.append(refused.value)

    assert "TC3-HMAC-SHA256 Credential=***/" in caplog.text  # the SDK did log its requests
    stored = b"".join(path.read_bytes() for path in (tmp_path / "db").rglob("*") if path.is_file())
    texts = [
        caplog.text,
        repr(embedder),
        repr(store),
        *(str(error) for error in errors),
        json.dumps(YoutuEmbeddingFunction.from_embedder(embedder).get_config()),
        json.dumps(store.collection.configuration_json),
        json.dumps(store.collection.metadata),
        stored.decode("utf-8", errors="replace"),
    ]
    for secret in (SECRET_KEY, SECRET_ID, WRONG_KEY):
        assert not [text for text in texts if secret in text]
