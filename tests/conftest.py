"""Shared fixtures: the tiny random ``youtu`` model and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_youtu import build_tiny_youtu
from youtu_rag import MINILM, YoutuEmbedder

# Nothing in the tests may reach the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


@pytest.fixture(scope="session")
def tiny_youtu_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local directory holding a tiny randomly initialised youtu model and its tokenizer."""
    return str(build_tiny_youtu(tmp_path_factory.mktemp("tiny_youtu")))


@pytest.fixture(scope="session")
def minilm() -> YoutuEmbedder:
    return YoutuEmbedder(MINILM, device="cpu")


@pytest.fixture(scope="session")
def tiny_youtu(tiny_youtu_dir: str) -> YoutuEmbedder:
    return YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=2)
