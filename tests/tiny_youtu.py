"""The test model: a tiny, randomly initialised checkpoint in the published Youtu-Embedding
(``utu``) layout. It has the real architecture's kind (a Llama-shaped decoder, heads of 64, run
bidirectionally) at toy width, not the real weights."""

from __future__ import annotations

from pathlib import Path

from youtu_rag.model.random_checkpoint import TINY_SHAPE, build_random_utu


def build_tiny_youtu(directory: Path, seed: int = 0) -> Path:
    """Save the tiny ``utu`` checkpoint and tokenizer to ``directory`` and return it."""
    return build_random_utu(directory, TINY_SHAPE, seed=seed)
