"""One resolution pass: a model's ``config.json`` is read once per process, whatever uses it.

The embedders, the profile lookup, the store's guard, the collection fingerprint and Chroma's
rebuilding of our embedding function on a reopened collection all take the one description.
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest

from youtu_rag import (
    MINILM,
    ChromaStore,
    EmbedderSettings,
    YoutuEmbedder,
    get_profile,
    resolve_model,
    resolve_profile,
)
from youtu_rag.backends.protocol import describe_model
from youtu_rag.index.store import ModelMismatchError, check_model, connect, describe

TEXTS = ["Chroma stores the vectors on disk.", "向量存储在磁盘上。"]


@pytest.fixture
def fresh_minilm(tmp_path: Path) -> str:
    """A copy of MiniLM under a path this process has never resolved."""
    copy = tmp_path / "minilm"
    shutil.copytree(get_profile(MINILM).source, copy)
    return str(copy)


def count_opens(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    """Record every ``open`` of ``path`` (builtins and io, which pathlib uses)."""
    target = os.path.realpath(path)
    opened: list[str] = []
    real_open: Callable[..., Any] = builtins.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and os.path.realpath(file) == target:
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    return opened


def test_config_json_is_read_once_per_model(
    fresh_minilm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = count_opens(monkeypatch, Path(fresh_minilm) / "config.json")

    first = YoutuEmbedder(fresh_minilm, device="cpu")
    second = YoutuEmbedder(fresh_minilm, device="cpu", max_length=64, batch_size=1)
    built = EmbedderSettings(model=fresh_minilm, device="cpu").build()
    profile = resolve_profile(fresh_minilm)
    resolved = describe_model(fresh_minilm)

    store = ChromaStore.open(first, persist_dir=tmp_path / "db", collection="notes")
    store.upsert(["en", "zh"], TEXTS)
    client = connect(tmp_path / "db", create=False)
    check_model(describe(client, "notes"), resolved)
    # Plain Chroma rebuilds our embedding function from the stored config on every query.
    rows = (
        chromadb.PersistentClient(path=str(tmp_path / "db"))
        .get_collection("notes")
        .query(query_texts=["磁盘"], n_results=2)
    )

    assert len(opened) == 1, opened
    assert resolved is resolve_model(fresh_minilm)
    assert profile is resolved.profile is first.resolved.profile
    assert resolved.config["model_type"] == "bert"
    assert resolved.source == fresh_minilm
    assert sorted(rows["ids"][0]) == ["en", "zh"]
    assert second.backbone is first.backbone
    np.testing.assert_allclose(
        built.encode_documents(TEXTS), first.encode_documents(TEXTS), atol=1e-6
    )


def test_a_utu_checkpoint_is_read_once_too(
    tiny_youtu_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Native loading builds the Llama network from the fields already read."""
    copy = tmp_path / "tiny_youtu"
    shutil.copytree(tiny_youtu_dir, copy)
    opened = count_opens(monkeypatch, copy / "config.json")

    bidirectional = YoutuEmbedder(str(copy), device="cpu")
    causal = YoutuEmbedder(str(copy), device="cpu", attention="causal")

    assert len(opened) == 1, opened
    assert bidirectional.resolved.utu
    assert (bidirectional.attention, causal.attention) == ("bidirectional", "causal")
    vectors = bidirectional.encode_queries(["今天天气怎么样", "What's the weather like?"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_guard_checks_the_resolved_name(fresh_minilm: str, tmp_path: Path) -> None:
    """A local copy records its own path; the canonical name is another model to the guard."""
    embedder = YoutuEmbedder(fresh_minilm, device="cpu")
    ChromaStore.open(embedder, persist_dir=tmp_path / "db", collection="notes").upsert(
        ["en", "zh"], TEXTS
    )
    info = describe(connect(tmp_path / "db", create=False), "notes")
    check_model(info, describe_model(fresh_minilm))
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        check_model(info, describe_model(MINILM))


def test_an_api_model_is_described_without_files() -> None:
    described = describe_model("tencent-cloud:youtu-embedding")
    assert (described.backend, described.name, dict(described.config)) == (
        "tencent-cloud",
        "tencent-cloud:youtu-embedding",
        {},
    )


def test_a_missing_model_is_not_remembered(tmp_path: Path, fresh_minilm: str) -> None:
    """An error is not cached: the same path resolves once the model is there."""
    later = tmp_path / "later"
    with pytest.raises(OSError):
        resolve_model(str(later))
    shutil.copytree(fresh_minilm, later)
    assert resolve_model(str(later)).config["model_type"] == "bert"
