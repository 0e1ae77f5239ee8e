"""A planted collection cannot choose where texts and keys go: its stored embedding-function
config names a loopback listener (a ``base_url``, or a Tencent Cloud ``endpoint`` over http).
The listener must receive nothing through the README's plain-Chroma recipe, `youtu-rag
search/index/ask`, ``ChromaStore``, LangChain or LlamaIndex, on an embedded database and on a
real `chroma run` server; each of ours refuses in one line; the documented opt-in is the only
way through."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.api import ClientAPI
from typer.testing import CliRunner

from tests.plain_chroma import run_plain_recipe
from tests.test_remote_code import PlantedFunction
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.backends.destinations import (
    ALLOWED_DESTINATIONS_ENV,
    DestinationRefusedError,
    check_destination,
    normalise_url,
)
from youtu_rag.cli import app
from youtu_rag.index.chroma_function import YoutuEmbeddingFunction
from youtu_rag.index.store import ChromaStore, fingerprint

runner = CliRunner()
API_KEY = "sk-users-own-key"


class Listener:
    """A plain socket server on 127.0.0.1 that records every connection and what it sent."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.received.append(connection.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def planted_configs(minilm: YoutuEmbedder, url: str) -> dict[str, dict[str, Any]]:
    """The two rewrites: MiniLM through a server at ``url``, and a Tencent Cloud endpoint."""
    return {
        "base_url": {"base_url": url, "model_name_or_path": minilm.model_name},
        "tencent": {
            "model_name_or_path": "tencent-cloud:lke-text-embedding-v1",
            "endpoint": url.removeprefix("http://"),
            "protocol": "http",
            "region": "ap-guangzhou",
        },
    }


def plant(client: ClientAPI, minilm: YoutuEmbedder, config: dict[str, Any]) -> str:
    """A collection with an honest MiniLM fingerprint and a config sending elsewhere."""
    name = f"dest-{uuid.uuid4().hex[:8]}"
    collection = client.create_collection(
        name,
        configuration={"hnsw": {"space": "cosine"}},
        metadata=dict(fingerprint(minilm)),
        embedding_function=PlantedFunction(config),  # type: ignore[arg-type]
    )
    text = "Masked mean pooling ignores the instruction. 掩码平均池化忽略指令。"
    collection.add(
        ids=["planted"],
        embeddings=[minilm.encode_documents([text])[0]],
        documents=[text],
        metadatas=[{"source": "/planted.md", "chunk": 0}],
    )
    return name


#: A query and an add by text, each a line of the plain-Chroma recipe.
QUERY_AND_ADD = [("query", "pooling 池化"), ("add", "a user's text 用户文本")]


def plain_recipe(targets: list[tuple[str, str]], **env: str) -> list[str]:
    return run_plain_recipe(targets, QUERY_AND_ADD, {"YOUTU_RAG_API_KEY": API_KEY, **env})


def assert_one_line_refusal(output: str, name: str, url: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert f"collection {name!r}" in lines[0], output
    assert normalise_url(url) in lines[0] and ALLOWED_DESTINATIONS_ENV in lines[0], output


def test_a_planted_destination_receives_nothing(
    minilm: YoutuEmbedder, chroma_server: str, listener: Listener, tmp_path: Path
) -> None:
    from langchain_chroma import Chroma
    from langchain_youtu import YoutuEmbeddings
    from llama_index.core import VectorStoreIndex
    from llama_index.embeddings.youtu import YoutuEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    host, port = chroma_server.removeprefix("http://").split(":")
    db = tmp_path / "db"
    backends: list[tuple[ClientAPI, str, list[str]]] = [
        (chromadb.PersistentClient(path=str(db)), str(db), ["--persist-dir", str(db)]),
        (chromadb.HttpClient(host=host, port=int(port)), chroma_server, ["--url", chroma_server]),
    ]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Masked mean pooling ignores the instruction. 池化。")
    targets = []
    cli_env = {"YOUTU_RAG_API_KEY": API_KEY}
    for client, where, store_options in backends:
        for config in planted_configs(minilm, listener.url).values():
            name = plant(client, minilm, config)
            targets.append((where, name))
            common = ["--model", MINILM, "--collection", name, *store_options]
            for command in (["index", str(docs)], ["search", "pooling 池化"], ["ask", "池化?"]):
                result = runner.invoke(app, [*command, *common], env=cli_env)
                assert result.exit_code == 1, result.output
                assert result.stderr.startswith("error: "), result.stderr
                assert_one_line_refusal(result.stderr, name, listener.url)
            with pytest.raises(DestinationRefusedError, match=f"collection {name!r}"):
                ChromaStore(minilm, client, name, create=False)
            with pytest.raises(DestinationRefusedError):
                ChromaStore(minilm, client, name)  # get-or-create, as `index` and LangChain do
            # Third-party stores over the same collection embed with the adapter and query by
            # vector: the stored function is never rebuilt, so nothing goes anywhere either.
            langchain = Chroma(
                client=client,
                collection_name=name,
                embedding_function=YoutuEmbeddings(model=MINILM),
            )
            assert langchain.similarity_search("pooling", k=1)[0].metadata["chunk"] == 0
            llama = VectorStoreIndex.from_vector_store(
                ChromaVectorStore(chroma_collection=client.get_collection(name)),
                embed_model=YoutuEmbedding(model_name=MINILM),
            )
            assert llama.as_retriever(similarity_top_k=1).retrieve("pooling 池化")
            assert client.get_collection(name).count() == 1  # nothing was written either

    lines = plain_recipe(targets)
    for (query, add), (_, name) in zip(
        zip(lines[::2], lines[1::2], strict=True), targets, strict=True
    ):
        for line in (query, add):
            assert line.startswith("ERROR"), line
            assert f"collection {name!r}" in line and ALLOWED_DESTINATIONS_ENV in line, line
            assert normalise_url(listener.url) in line, line
    assert listener.received == []

    # The caller's word, and only it: another URL in the variable is not enough.
    other = plain_recipe(targets[:1], **{ALLOWED_DESTINATIONS_ENV: "http://127.0.0.1:1"})
    assert all(line.startswith("ERROR") for line in other)
    assert listener.received == []
    # The variable naming the listener lets the recipe send there, the loopback key included.
    opted_in = plain_recipe(targets[:1], **{ALLOWED_DESTINATIONS_ENV: listener.url})
    assert listener.received and b"GET /v1/models" in listener.received[0], opted_in
    assert f"Bearer {API_KEY}".encode() in listener.received[0]
    # Our commands accept it too (they embed here, so the listener hears nothing more).
    heard = len(listener.received)
    search = runner.invoke(
        app,
        [
            "search",
            "pooling",
            "--model",
            MINILM,
            "--collection",
            targets[0][1],
            "--persist-dir",
            str(db),
        ],
        env={ALLOWED_DESTINATIONS_ENV: listener.url},
    )
    assert search.exit_code == 0, search.output
    assert "/planted.md" in search.stdout
    assert len(listener.received) == heard


def test_the_opt_in_is_the_callers_and_credentials_need_https(
    minilm: YoutuEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOWED_DESTINATIONS_ENV, raising=False)
    monkeypatch.setenv("YOUTU_RAG_API_KEY", API_KEY)
    configs = planted_configs(minilm, "http://127.0.0.1:9")
    for config in configs.values():
        with pytest.raises(DestinationRefusedError, match="collection 'notes'"):
            check_destination(config, collection="notes")
        # The argument, in any spelling of the same address, is the caller's word...
        check_destination(config, collection="notes", allowed=["HTTP://127.0.0.1:9/"])
        YoutuEmbeddingFunction.build_from_config(
            config, allowed_destinations=["http://127.0.0.1:9"]
        )
        # ...and so is the variable.
        monkeypatch.setenv(ALLOWED_DESTINATIONS_ENV, "https://a.example, http://127.0.0.1:9")
        check_destination(config, collection="notes")
        monkeypatch.delenv(ALLOWED_DESTINATIONS_ENV)

    # A key never goes over plain http to another machine, allowed or not; https is fine.
    remote = {**configs["base_url"], "base_url": "http://embed.example:8000"}
    with pytest.raises(DestinationRefusedError, match="credentials go only over https"):
        check_destination(remote, allowed=["http://embed.example:8000"])
    tencent = {**configs["tencent"], "endpoint": "embed.example"}
    with pytest.raises(DestinationRefusedError, match="credentials go only over https"):
        check_destination(tencent, allowed=["http://embed.example"])
    check_destination(
        {**remote, "base_url": "https://embed.example"}, allowed=["https://embed.example:443"]
    )

    # What needs no opt-in: a local model, and Tencent Cloud's public endpoint in our region.
    check_destination(YoutuEmbeddingFunction.from_embedder(minilm).get_config())
    public = {**configs["tencent"], "endpoint": "lkeap.tencentcloudapi.com", "protocol": "https"}
    check_destination(public)
    with pytest.raises(DestinationRefusedError, match="region ap-beijing"):
        check_destination({**public, "region": "ap-beijing"})
    np.testing.assert_equal(normalise_url("https://H.example/v1/"), "https://h.example:443/v1")


def smuggled_configs(minilm: YoutuEmbedder, url: str) -> dict[str, dict[str, Any]]:
    """Destinations whose checked host and connected host differ to a lax parser: a backslash
    before ``@`` makes ``urlsplit`` read the public host while HTTP stacks connect to
    ``host_port``."""
    host_port = url.removeprefix("http://")
    public = "lkeap.tencentcloudapi.com"
    tencent = {"model_name_or_path": "tencent-cloud:lke-text-embedding-v1"}
    return {
        "tencent-host": {**tencent, "endpoint": f"{host_port}\\@{public}"},
        "tencent-url": {**tencent, "endpoint": f"https://{host_port}\\@{public}"},
        "tencent-userinfo": {**tencent, "endpoint": f"{public}@{host_port}"},
        "tencent-percent": {**tencent, "endpoint": f"{host_port}%5C@{public}"},
        "base_url": {
            "base_url": f"http://{host_port}\\@embed.example/v1",
            "model_name_or_path": minilm.model_name,
        },
        "base_url-space": {"base_url": f"http:// {host_port}", "model_name_or_path": MINILM},
    }


def test_a_smuggled_authority_is_refused_and_reaches_nothing(
    minilm: YoutuEmbedder, listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from youtu_rag import HttpEmbedder, TencentCloudEmbedder

    secrets = {"TENCENTCLOUD_SECRET_ID": "AKIDusers", "TENCENTCLOUD_SECRET_KEY": "key"}
    for variable, value in {**secrets, "YOUTU_RAG_API_KEY": API_KEY}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv(ALLOWED_DESTINATIONS_ENV, raising=False)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    configs = smuggled_configs(minilm, listener.url)
    names = {kind: plant(client, minilm, config) for kind, config in configs.items()}
    for kind, config in configs.items():
        with pytest.raises(DestinationRefusedError, match="not a plain http"):
            check_destination(config, collection=names[kind])
        # Named by the caller, verbatim, it is still no address the backends take.
        with pytest.raises(DestinationRefusedError, match="not a plain http"):
            YoutuEmbeddingFunction.build_from_config(
                config, allowed_destinations=[config.get("base_url") or config["endpoint"]]
            )
        with pytest.raises(DestinationRefusedError, match="not a plain http"):
            ChromaStore(minilm, client, names[kind], create=False)
        result = runner.invoke(
            app,
            [
                "search",
                "天气 weather",
                "--collection",
                names[kind],
                "--persist-dir",
                str(tmp_path / "db"),
                "--model",
                MINILM,
            ],
        )
        assert result.exit_code == 1 and "not a plain http" in result.stderr, result.output
    # The backends themselves take only the plain form, whoever passes it.
    for config in configs.values():
        with pytest.raises(ValueError, match="not a plain http"):
            if "base_url" in config:
                HttpEmbedder(config["base_url"])
            else:
                TencentCloudEmbedder(endpoint=config["endpoint"])
    lines = plain_recipe([(str(tmp_path / "db"), name) for name in names.values()], **secrets)
    assert len(lines) == 2 * len(names) and all(line.startswith("ERROR") for line in lines)
    assert listener.received == []
