"""youtu-rag: Youtu-Embedding as a drop-in embedding and retrieval component for RAG.

The package is one subpackage per layer, lowest first, each importing only those before it:
:mod:`~youtu_rag.model` (the embedding core), :mod:`~youtu_rag.backends` (the embedder protocol,
settings and remote embedders), :mod:`~youtu_rag.index` (a collection: the Chroma store, the
lexical index, search), :mod:`~youtu_rag.ingest` (files to chunks in a collection, OCR
included), :mod:`~youtu_rag.serve` (the OpenAI-compatible server),
:mod:`~youtu_rag.measure` (evaluation, benchmarks, verify) and :mod:`~youtu_rag.cli` (the
``youtu-rag`` command); see ``docs/architecture.md``. This module only names the public API.

Public names are loaded on first use (PEP 562), so ``import youtu_rag.cli`` and ``--help`` stay
free of torch and chromadb. Chroma learns our embedding function the moment both are imported,
in either order, so a reopened collection can embed text (see :mod:`youtu_rag._chroma_hook`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from youtu_rag._chroma_hook import register_with_chroma

if TYPE_CHECKING:
    from youtu_rag.backends.http import HttpEmbedder
    from youtu_rag.backends.settings import EmbedderSettings
    from youtu_rag.backends.tencent_cloud import TencentCloudEmbedder, TencentCloudError
    from youtu_rag.backends.tencent_rerank import TencentCloudReranker
    from youtu_rag.index.chroma_function import YoutuEmbeddingFunction
    from youtu_rag.index.store import ChromaStore
    from youtu_rag.model.embedder import YoutuEmbedder
    from youtu_rag.model.loading import clear_backbone_cache
    from youtu_rag.model.profiles import MINILM, YOUTU_EMBEDDING, ModelProfile, get_profile
    from youtu_rag.model.reranker import Reranker
    from youtu_rag.model.resolution import ResolvedModel, resolve_model, resolve_profile
    from youtu_rag.model.sentence_transformer import SentenceTransformer

_PUBLIC = {
    "ChromaStore": "youtu_rag.index.store",
    "EmbedderSettings": "youtu_rag.backends.settings",
    "HttpEmbedder": "youtu_rag.backends.http",
    "MINILM": "youtu_rag.model.profiles",
    "Reranker": "youtu_rag.model.reranker",
    "SentenceTransformer": "youtu_rag.model.sentence_transformer",
    "ModelProfile": "youtu_rag.model.profiles",
    "TencentCloudEmbedder": "youtu_rag.backends.tencent_cloud",
    "TencentCloudError": "youtu_rag.backends.tencent_cloud",
    "TencentCloudReranker": "youtu_rag.backends.tencent_rerank",
    "YOUTU_EMBEDDING": "youtu_rag.model.profiles",
    "YoutuEmbedder": "youtu_rag.model.embedder",
    "YoutuEmbeddingFunction": "youtu_rag.index.chroma_function",
    "clear_backbone_cache": "youtu_rag.model.loading",
    "get_profile": "youtu_rag.model.profiles",
    "ResolvedModel": "youtu_rag.model.resolution",
    "resolve_model": "youtu_rag.model.resolution",
    "resolve_profile": "youtu_rag.model.resolution",
}

__all__ = [
    "MINILM",
    "YOUTU_EMBEDDING",
    "ChromaStore",
    "EmbedderSettings",
    "HttpEmbedder",
    "ModelProfile",
    "Reranker",
    "ResolvedModel",
    "SentenceTransformer",
    "TencentCloudEmbedder",
    "TencentCloudError",
    "TencentCloudReranker",
    "YoutuEmbedder",
    "YoutuEmbeddingFunction",
    "clear_backbone_cache",
    "get_profile",
    "resolve_model",
    "resolve_profile",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'youtu_rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


register_with_chroma()
