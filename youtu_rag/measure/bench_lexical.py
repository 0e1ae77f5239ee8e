"""The lexical index's cost: build rate and size, and single-query latency of the three modes.

Latency is what a caller of ``ChromaStore.search`` waits: the query embedded by the model (dense
and hybrid), Chroma's HNSW query, the lexical index's query and its check against the
collection, the fusion and the read of the hits' texts. Vectors are random unit vectors (the
cost of a query does not depend on what the vectors mean), texts are a real corpus (SciFact) or
synthetic sentences over a Zipf-distributed vocabulary, so term statistics look like a language.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from youtu_rag.backends.protocol import Embedder
from youtu_rag.index.fusion import SEARCH_MODES
from youtu_rag.index.lexical_sync import LexicalMirror
from youtu_rag.index.store import ChromaStore, connect
from youtu_rag.measure.bench import unit_vectors
from youtu_rag.measure.evaluation import load_beir

__all__ = ["bench_lexical", "synthetic_corpus"]

_SYLLABLES = ["ka", "to", "ri", "men", "sa", "lo", "vi", "der", "qu", "an", "el", "po", "zu", "ti"]


def synthetic_corpus(
    size: int, *, words: int = 60, vocabulary: int = 50_000, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``size`` texts of ``words`` words drawn from a Zipf law over ``vocabulary`` made-up words,
    and queries of 3 to 6 words drawn from texts.

    Returns:
        (texts, 1000 queries).
    """
    generator = np.random.default_rng(seed)
    lexicon = [
        "".join(generator.choice(_SYLLABLES, size=int(generator.integers(2, 5)))) + str(index % 97)
        for index in range(vocabulary)
    ]
    ranks = np.minimum(generator.zipf(1.2, size=(size, words)), vocabulary) - 1
    texts = [" ".join(lexicon[rank] for rank in row) for row in ranks.tolist()]
    queries = []
    for row in generator.integers(0, size, 1000).tolist():
        chosen = generator.choice(ranks[row], size=int(generator.integers(3, 7)), replace=False)
        queries.append(" ".join(lexicon[rank] for rank in chosen.tolist()))
    return texts, queries


def _one_corpus(
    embedder: Embedder,
    name: str,
    texts: Sequence[str],
    queries: Sequence[str],
    root: Path,
    k: int,
) -> dict[str, Any]:
    generator = np.random.default_rng(0)
    client = connect(root / name)
    store = ChromaStore(embedder, client, "bench", lexical=False)
    step = 5000
    for start in range(0, len(texts), step):
        part = list(texts[start : start + step])
        store.upsert(
            [str(index) for index in range(start, start + len(part))],
            part,
            embeddings=unit_vectors(generator, len(part), embedder.dimension),
        )
    started = time.perf_counter()
    store.lexical = LexicalMirror(client, store.collection)
    store.lexical.ensure_in_sync()  # built from the collection
    build_seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "corpus": name,
        "chunks": len(texts),
        "build_s": round(build_seconds, 2),
        "chunks_per_s": round(len(texts) / build_seconds, 1),
        "index_mb": round(store.lexical.index.size_bytes() / 1e6, 2),
    }
    for query in queries[:3]:  # warm every path once
        for mode in SEARCH_MODES:
            store.search(query, k=k, mode=mode)  # type: ignore[arg-type]
    for mode in SEARCH_MODES:
        latencies = []
        for query in queries:
            started = time.perf_counter()
            store.search(query, k=k, mode=mode)  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - started)
        row[f"{mode}_p50_ms"] = round(float(np.percentile(latencies, 50)) * 1e3, 2)
        row[f"{mode}_p95_ms"] = round(float(np.percentile(latencies, 95)) * 1e3, 2)
    row["hybrid_vs_dense_p50"] = round(row["hybrid_p50_ms"] / row["dense_p50_ms"], 2)
    return row


def bench_lexical(
    embedder: Embedder,
    *,
    beir: str | Path | None = None,
    sizes: Sequence[int] = (100_000,),
    queries: int = 200,
    k: int = 10,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Build rate and size of the lexical index, and p50/p95 single-query latency of dense,
    lexical and hybrid search, on a BEIR corpus and on synthetic collections.

    Args:
        embedder: embeds the queries (its dimension sizes the random vectors).
        beir: a BEIR folder whose corpus and queries to use, or None.
        sizes: synthetic collection sizes.
        queries: queries timed per mode.
        k: results per query.
        path: where the databases go (default: a temporary directory).

    Returns:
        ``model``, ``k``, ``queries`` and one ``results`` row per corpus.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="youtu_rag_bench_lexical_") as scratch:
        root = Path(path or scratch)
        if beir is not None:
            dataset = load_beir(beir)
            rows.append(
                _one_corpus(
                    embedder,
                    Path(beir).name,
                    list(dataset.corpus.values()),
                    list(dataset.queries.values())[:queries],
                    root,
                    k,
                )
            )
        for size in sizes:
            texts, probes = synthetic_corpus(size)
            rows.append(
                _one_corpus(embedder, f"synthetic_{size}", texts, probes[:queries], root, k)
            )
    return {"model": embedder.model_name, "k": k, "queries": queries, "results": rows}
