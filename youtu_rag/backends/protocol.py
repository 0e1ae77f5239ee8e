"""Which embedder a model string means: ``tencent-cloud:<model>`` is the Tencent Cloud API,
anything else a local model. Every place a user names a model (CLI, adapters, the Chroma
function) goes through :func:`create_embedder`, so they all accept the same strings.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import numpy as np

from youtu_rag.backends.http import HTTP_BACKEND, HttpEmbedder
from youtu_rag.backends.tencent_cloud import BACKEND as TENCENT_CLOUD
from youtu_rag.backends.tencent_cloud import TencentCloudEmbedder
from youtu_rag.model.profiles import get_profile
from youtu_rag.model.resolution import ResolvedModel, resolve_model

if TYPE_CHECKING:
    from youtu_rag.model.embedder import YoutuEmbedder


class TextEmbedder(Protocol):
    """What the adapters need: texts in, unit float32 rows out. :class:`YoutuEmbedder`, the
    Tencent Cloud API, or :class:`~youtu_rag.backends.http.HttpEmbedder` in front of a
    ``youtu-rag serve`` server."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode_queries(self, texts: str | Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, texts: str | Sequence[str]) -> np.ndarray: ...


class Embedder(TextEmbedder, Protocol):
    """What the store, ingestion and evaluation need from an embedder, local or remote."""

    @property
    def backend(self) -> str:
        """``local`` or ``tencent-cloud``: recorded by the store next to the model."""

    @property
    def max_length(self) -> int:
        """Longest text embedded whole: tokens locally, characters for an API."""

    @property
    def query_prefix(self) -> str: ...

    @property
    def document_prefix(self) -> str: ...

    @property
    def pooling(self) -> str: ...

    @property
    def batch_size(self) -> int:
        """Texts per forward pass (per API call for a remote model)."""


def is_server_url(model: str) -> bool:
    """Whether ``model`` is an OpenAI-compatible embeddings server's URL
    (``http(s)://HOST:PORT/v1``): :class:`~youtu_rag.backends.http.HttpEmbedder` embeds."""
    return model.startswith(("http://", "https://"))


def is_remote(model: str) -> bool:
    """Whether ``model`` names an API model or a server rather than a model loaded here."""
    return model.startswith(f"{TENCENT_CLOUD}:") or is_server_url(model)


def is_local_embedder(embedder: object) -> TypeGuard[YoutuEmbedder]:
    """Whether ``embedder`` is a model loaded here, asked without importing torch: while the
    model module is not imported, no :class:`~youtu_rag.YoutuEmbedder` can exist."""
    loaded = sys.modules.get("youtu_rag.model.embedder")
    return loaded is not None and isinstance(embedder, loaded.YoutuEmbedder)


def describe_model(model: str) -> ResolvedModel:
    """What ``model`` names, resolved once per process: for an API model its name and backend
    only (there are no files to read), else :func:`~youtu_rag.model.resolution.resolve_model`.

    Args:
        model: a model string, as a user gives it.

    Returns:
        The description the store's guard checks a collection against before any model loads.

    Raises:
        OSError: a local model's ``config.json`` cannot be found.
    """
    if is_remote(model):
        return ResolvedModel(
            name=model,
            profile=get_profile(model),
            config={},
            sentence_transformers=None,
            backend=HTTP_BACKEND if is_server_url(model) else TENCENT_CLOUD,
        )
    return resolve_model(model)


def create_embedder(
    model: str, /, **options: Any
) -> YoutuEmbedder | TencentCloudEmbedder | HttpEmbedder:
    """The embedder for ``model`` with ``options``; ``None`` options mean "the default".

    Dropping ``None`` lets one call site (an adapter, the CLI) pass all its fields for either
    backend; an option that is set but means nothing for the chosen backend is an error.
    """
    given = {key: value for key, value in options.items() if value is not None}
    if not is_remote(model):
        from youtu_rag.model.embedder import YoutuEmbedder

        return YoutuEmbedder(model, **given)
    if is_server_url(model):
        unknown = sorted(set(given) - set(inspect.signature(HttpEmbedder).parameters))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} cannot be set for {model}: the model runs in that server"
            )
        return HttpEmbedder(model, **given)
    name = model.partition(":")[2]
    unknown = sorted(set(given) - set(inspect.signature(TencentCloudEmbedder).parameters))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} cannot be set for {model}: the model runs in Tencent Cloud"
        )
    return TencentCloudEmbedder(name, **given)


class TextReranker(Protocol):
    """What the rerank stage needs: scores of documents for a query, and a ranking of them.
    :class:`~youtu_rag.model.reranker.Reranker` (a local cross-encoder) or
    :class:`~youtu_rag.backends.tencent_rerank.TencentCloudReranker` (``RunRerank``)."""

    @property
    def model_name(self) -> str: ...

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...

    def rank(
        self, query: str, documents: Sequence[str], top_n: int | None = None
    ) -> list[tuple[int, float]]: ...


def reranker_or_model(
    reranker: TextReranker | None, model: str | None, **options: Any
) -> TextReranker:
    """``reranker`` when given, else the one ``model`` names (the adapters' two ways in).

    Raises:
        ValueError: neither is given.
    """
    if reranker is not None:
        return reranker
    if model is None:
        raise ValueError("a reranker needs model= (a cross-encoder, or tencent-cloud:...)")
    return create_reranker(model, **options)


def create_reranker(model: str, **options: Any) -> TextReranker:
    """The reranker a model string names: ``tencent-cloud:MODEL`` is ``RunRerank`` (its local
    options, such as ``device``, ignored); anything else a cross-encoder checkpoint."""
    if is_remote(model):
        from youtu_rag.backends.tencent_rerank import TencentCloudReranker

        return TencentCloudReranker(model.split(":", 1)[1] or "lke-reranker-base")
    from youtu_rag.model.reranker import Reranker

    return Reranker(model, **options)
