"""The second stage: a reranker reorders the first stage's candidates.

The first stage (dense, lexical or hybrid) returns ``candidates`` hits; the reranker scores each
(query, hit text) pair and the best ``k`` are kept, best first, each carrying its
``rerank_score`` beside the first stage's ranks and scores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from youtu_rag.backends.protocol import TextReranker
from youtu_rag.index.defaults import DEFAULT_CANDIDATES
from youtu_rag.index.store import Hit

__all__ = ["DEFAULT_CANDIDATES", "rerank_hits"]


def rerank_hits(
    reranker: TextReranker, query: str, hits: Sequence[Hit], k: int | None = None
) -> list[Hit]:
    """``hits`` reordered by ``reranker``'s score for ``query``, the ``k`` best (all by
    default), each with its ``rerank_score``."""
    if not hits:
        return []
    ranked = reranker.rank(query, [hit.text for hit in hits], top_n=k)
    return [dataclasses.replace(hits[index], rerank_score=score) for index, score in ranked]
