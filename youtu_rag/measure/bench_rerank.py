"""``youtu-rag bench rerank``: query-document pairs per second of :class:`~youtu_rag.Reranker`
against sentence-transformers' ``CrossEncoder`` on the same checkpoint and the same pairs, in
one run (rounds interleaved, each side keeps its fastest), with the scores compared."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from youtu_rag.measure.bench_serve import machine
from youtu_rag.measure.evaluation import load_beir
from youtu_rag.model.reranker import Reranker

__all__ = ["bench_rerank"]


def bench_rerank(
    model: str,
    beir: str | Path,
    *,
    queries: int = 8,
    candidates: int = 20,
    batch_size: int = 32,
    repeats: int = 3,
    device: str | None = None,
) -> dict[str, Any]:
    """Pairs per second both ways and their ratio (ours over CrossEncoder's); JSON-ready."""
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as error:
        raise RuntimeError(
            "bench rerank compares with sentence-transformers: pip install sentence-transformers"
        ) from error
    dataset = load_beir(beir)
    documents = list(dataset.corpus.values())[:candidates]
    asked = list(dataset.queries.values())[:queries]
    ours = Reranker(model, device=device, batch_size=batch_size)
    theirs = CrossEncoder(model, device=str(ours.device))
    pairs = [(query, doc) for query in asked for doc in documents]
    # One call per query both ways: a reranker's work in a search.
    best = {"youtu_rag": float("inf"), "cross_encoder": float("inf")}
    ours_scores: list[float] = []
    their_scores = np.zeros(0)
    for _ in range(repeats + 1):  # the first round warms both up
        started = time.perf_counter()
        ours_scores = [score for query in asked for score in ours.score(query, documents)]
        best["youtu_rag"] = min(best["youtu_rag"], time.perf_counter() - started)
        started = time.perf_counter()
        their_scores = np.concatenate(
            [
                np.asarray(theirs.predict([(query, d) for d in documents], batch_size=batch_size))
                for query in asked
            ]
        )
        best["cross_encoder"] = min(best["cross_encoder"], time.perf_counter() - started)
    return {
        "model": model,
        "device": str(ours.device),
        "machine": machine(),
        "pairs": len(pairs),
        "pairs_per_s": {name: len(pairs) / seconds for name, seconds in best.items()},
        "ratio": best["cross_encoder"] / best["youtu_rag"],
        "max_abs_diff": float(np.abs(np.asarray(ours_scores) - their_scores).max()),
    }
