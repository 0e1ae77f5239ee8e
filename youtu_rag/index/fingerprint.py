"""The embedder fingerprint a collection records in its metadata, and how two compare.

Vectors of two embedders in one index rank nonsense without raising anything, so every path
that embeds for a collection (``ChromaStore`` and the plain-Chroma embedding function alike)
compares its embedder's fingerprint with the recorded one and refuses a difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from youtu_rag.backends.protocol import Embedder, is_local_embedder

# Collection metadata keys of the embedder fingerprint.
BACKEND_KEY = "youtu_rag:backend"  # absent from collections made before it: "local"
MODEL_KEY = "youtu_rag:model"
DIMENSION_KEY = "youtu_rag:dimension"
QUERY_PREFIX_KEY = "youtu_rag:query_prefix"
DOCUMENT_PREFIX_KEY = "youtu_rag:document_prefix"
POOLING_KEY = "youtu_rag:pooling"
FINGERPRINT_KEYS = (MODEL_KEY, DIMENSION_KEY, QUERY_PREFIX_KEY, DOCUMENT_PREFIX_KEY, POOLING_KEY)


def fingerprint(embedder: Embedder) -> dict[str, str | int]:
    """Everything about an embedder that decides whether two vectors are comparable.

    Args:
        embedder: the embedder, local or remote.

    Returns:
        Collection metadata: backend, model, dimension, both prefixes and the pooling.
    """
    return {
        BACKEND_KEY: embedder.backend,
        MODEL_KEY: embedder.model_name,
        DIMENSION_KEY: embedder.dimension,
        QUERY_PREFIX_KEY: embedder.query_prefix,
        DOCUMENT_PREFIX_KEY: embedder.document_prefix,
        POOLING_KEY: recorded_pooling(embedder),
    }


def recorded_pooling(embedder: Embedder) -> str:
    """The pooling as a collection records it."""
    # Mean pooling (and an API's own) keeps the value collections made before pooling modes
    # existed record.
    if not is_local_embedder(embedder) or embedder.pooling_mode == "mean":
        return embedder.pooling
    return f"{embedder.pooling_mode} of {embedder.pooling}"


def recorded_backend(metadata: Mapping[str, Any]) -> str | None:
    """The backend a collection records; one made before backends were recorded is local."""
    if BACKEND_KEY in metadata or MODEL_KEY not in metadata:
        value = metadata.get(BACKEND_KEY)
        return None if value is None else str(value)
    return "local"


def records_fingerprint(metadata: Mapping[str, Any]) -> bool:
    """Whether a collection's metadata holds a youtu-rag fingerprint at all."""
    return any(key in metadata for key in FINGERPRINT_KEYS)


def differences(
    metadata: Mapping[str, Any], expected: Mapping[str, str | int]
) -> dict[str, tuple[Any, str | int]]:
    """Each fingerprint key whose recorded value differs: (recorded, expected)."""
    recorded = {**metadata, BACKEND_KEY: recorded_backend(metadata)}
    return {
        key: (recorded.get(key), value)
        for key, value in expected.items()
        if recorded.get(key) != value
    }


def describe_differences(different: Mapping[str, tuple[Any, Any]]) -> str:
    """``"pooling 'all' vs 'cls of all'"`` for each difference (index first), joined by ``; ``."""
    return "; ".join(
        f"{key.removeprefix('youtu_rag:')} {was!r} vs {now!r}"
        for key, (was, now) in different.items()
    )
