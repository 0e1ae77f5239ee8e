"""How fast the script-aware splitter chunks a file, against the splitter youtu-rag used before
chunking rules version 2 (LangChain's default separators, the same token count per piece).

LangChain's default knows only paragraphs, lines and spaces: a Chinese paragraph has no spaces,
so it falls back to single characters and counts the tokens of every one of them. The methods
run interleaved, round after round, each keeping its best round; peak memory is Python's
allocation peak (``tracemalloc``) while splitting.
"""

from __future__ import annotations

import functools
import time
import tracemalloc
from pathlib import Path
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from youtu_rag.backends.protocol import Embedder
from youtu_rag.ingest.chunking import Chunker, make_chunker
from youtu_rag.ingest.formats import open_parts

#: What is compared: the new default, and youtu-rag's splitter before it.
METHODS = ("default", "before")


def bench_chunking(
    embedder: Embedder,
    path: Path,
    *,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    repeats: int = 3,
) -> dict[str, Any]:
    """Seconds, chunks and peak memory splitting ``path`` with each of :data:`METHODS`.

    Returns:
        ``{"file", "bytes", "model", "runs": [{"splitter", "chunks", "seconds", "peak_mib",
        "vs_before"}]}``; ``vs_before`` above 1 is faster than the splitter before.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    current = make_chunker(embedder, chunk_size, chunk_overlap)
    chunkers = {"default": current, "before": _splitter_before(embedder, current)}
    best: dict[str, float] = {}
    chunks: dict[str, int] = {}
    peaks: dict[str, int] = {}
    for _ in range(repeats):
        for method, chunker in chunkers.items():
            tracemalloc.start()
            start = time.perf_counter()
            count = sum(1 for _ in chunker.split_parts(open_parts(path)))
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            best[method] = min(seconds, best.get(method, seconds))
            chunks[method] = count
            peaks[method] = max(peak, peaks.get(method, 0))
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "model": embedder.model_name,
        "runs": [
            {
                "splitter": method,
                "chunks": chunks[method],
                "seconds": best[method],
                "peak_mib": peaks[method] / (1 << 20),
                "vs_before": best["before"] / best[method],
            }
            for method in METHODS
        ],
    }


def _splitter_before(embedder: Embedder, current: Chunker) -> Chunker:
    """The plain-text splitter of youtu-rag before rules version 2, at the same sizes."""
    from youtu_rag.model.embedder import YoutuEmbedder
    from youtu_rag.model.tokenization import count_tokens

    rules = current.rules
    options: dict[str, Any] = {"chunk_size": rules.chunk_size, "chunk_overlap": rules.chunk_overlap}
    if isinstance(embedder, YoutuEmbedder):
        options["length_function"] = functools.partial(count_tokens, embedder.backbone.tokenizer)
    return Chunker(RecursiveCharacterTextSplitter(**options), rules)
