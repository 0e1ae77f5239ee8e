"""Does a model reproduce its publisher's scores? One known example, checked in one command.

The publisher of Youtu-Embedding printed its reference script's scores for one example (a query
about the weather against three sentences); those three numbers are the only fingerprint of the
real weights we have. A user who downloaded the checkpoint runs ``youtu-rag verify`` once and
learns whether loading, instruction, pooling and attention reproduce the publisher. For a ``utu``
checkpoint the other attention mode is scored too, on the same weights, so a mismatch says which
mode the weights want.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from youtu_rag.model.embedder import YoutuEmbedder
from youtu_rag.model.profiles import MINILM, YOUTU_EMBEDDING
from youtu_rag.model.utu import Attention

WEATHER_QUERY = "What's the weather like?"
WEATHER_DOCUMENTS = (
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
)
#: Largest score difference that still reproduces the publisher.
TOLERANCE = 2e-3


@dataclass(frozen=True)
class Fingerprint:
    """Published scores of the weather example, and what produced them."""

    source: str
    scores: tuple[float, float, float]


FINGERPRINTS = {
    YOUTU_EMBEDDING: Fingerprint(
        "the publisher's inference script (float32, default query instruction)",
        (0.44651979207992554, 0.31240469217300415, 0.030404280871152878),
    ),
    MINILM: Fingerprint(
        "sentence-transformers SentenceTransformer.encode(normalize_embeddings=True)",
        (0.6218916177749634, 0.5147392153739929, 0.0859166830778122),
    ),
}


@dataclass(frozen=True)
class Verification:
    """The scores one model gives the weather example, against its published fingerprint."""

    model: str
    attention: Attention | None
    scores: list[float]
    reference: str | None
    expected: list[float] | None
    max_difference: float | None
    #: The same weights under the other attention mode (``utu`` checkpoints only).
    other_attention: Attention | None = None
    other_scores: list[float] | None = None
    other_max_difference: float | None = None

    @property
    def passed(self) -> bool:
        return self.max_difference is not None and self.max_difference <= TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``youtu-rag verify --json``: the fields, ``passed`` and
        ``tolerance``."""
        return {**asdict(self), "passed": self.passed, "tolerance": TOLERANCE}


def weather_scores(embedder: YoutuEmbedder) -> list[float]:
    """Cosine scores of the query against the three documents, with the model's own rules.

    Args:
        embedder: the embedder to score.

    Returns:
        The three scores, in :data:`WEATHER_DOCUMENTS` order.
    """
    query = embedder.encode_queries(WEATHER_QUERY)[0]
    documents = embedder.encode_documents(list(WEATHER_DOCUMENTS))
    return [float(score) for score in documents @ query]


def fingerprint_for(embedder: YoutuEmbedder) -> Fingerprint | None:
    """The model's published scores.

    Args:
        embedder: the embedder to look up, by model name.

    Returns:
        Its fingerprint; a ``utu`` checkpoint of another name (a local copy) is taken to be
        Youtu-Embedding, the only ``utu`` model published; ``None`` for unknown models.
    """
    known = FINGERPRINTS.get(embedder.model_name)
    if known is None and embedder.attention is not None:
        return FINGERPRINTS[YOUTU_EMBEDDING]
    return known


def _largest_difference(scores: list[float], expected: tuple[float, ...] | None) -> float | None:
    if expected is None:
        return None
    return float(np.max(np.abs(np.asarray(scores) - np.asarray(expected))))


def verify(model: str = YOUTU_EMBEDDING, **embedder_options: Any) -> Verification:
    """Score the weather example with ``model`` and compare with its published fingerprint.

    Args:
        model: hub id or local directory, as for :class:`~youtu_rag.YoutuEmbedder`.
        **embedder_options: further ``YoutuEmbedder`` arguments (device, dtype, attention, ...);
            the published scores were computed in float32, the default here.

    Returns:
        The scores, the expected ones where known, and for a ``utu`` checkpoint the scores
        under the other attention mode as well.
    """
    embedder_options.setdefault("dtype", "float32")
    embedder = YoutuEmbedder(model, **embedder_options)
    fingerprint = fingerprint_for(embedder)
    expected = fingerprint.scores if fingerprint else None
    scores = weather_scores(embedder)
    verification = Verification(
        model=embedder.model_name,
        attention=embedder.attention,
        scores=scores,
        reference=fingerprint.source if fingerprint else None,
        expected=list(expected) if expected else None,
        max_difference=_largest_difference(scores, expected),
    )
    if embedder.attention is None:
        return verification
    other: Attention = "causal" if embedder.attention == "bidirectional" else "bidirectional"
    other_scores = weather_scores(YoutuEmbedder(model, **{**embedder_options, "attention": other}))
    return replace(
        verification,
        other_attention=other,
        other_scores=other_scores,
        other_max_difference=_largest_difference(other_scores, expected),
    )
