"""Bad and strange input: clear errors naming the index, never NaN."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from youtu_rag import YoutuEmbedder

STRANGE = [
    "\x00\x01\x07\x1b control",
    "\x00\x01\x02",
    "🙂🚀👍🏽",
    "中文检索增强生成。日本語のテキスト。한국어 문장.",
    "[CLS] [SEP] [PAD] [MASK] <s> </s> <pad> <|endoftext|>",
    "a" * 100_000,
    "\u200b\u200dzero width",
    "\ufffd replacement",
]


def assert_unit_rows(vectors: np.ndarray) -> None:
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.fixture(params=["minilm", "tiny_youtu"])
def embedder(request: pytest.FixtureRequest) -> YoutuEmbedder:
    result: YoutuEmbedder = request.getfixturevalue(request.param)
    return result


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["nested"]])
def test_non_strings_raise_type_error_naming_the_index(
    embedder: YoutuEmbedder, bad: object
) -> None:
    with pytest.raises(TypeError, match="index 2"):
        embedder.encode_documents(["fine", "also fine", bad])  # type: ignore[list-item]


@pytest.mark.parametrize("blank", ["", " ", "\n\t  \r\n", "\u3000"])
def test_blank_texts_raise_value_error_naming_the_index(
    embedder: YoutuEmbedder, blank: str
) -> None:
    with pytest.raises(ValueError, match="index 1"):
        embedder.encode_queries(["fine", blank])


def test_empty_input_gives_an_empty_matrix(embedder: YoutuEmbedder) -> None:
    assert embedder.encode_documents([]).shape == (0, embedder.dimension)


def test_a_single_string_is_one_row(embedder: YoutuEmbedder) -> None:
    assert embedder.encode_queries("hello").shape == (1, embedder.dimension)


def test_strange_texts_give_finite_unit_vectors(embedder: YoutuEmbedder) -> None:
    assert_unit_rows(embedder.encode_documents(STRANGE))
    assert_unit_rows(embedder.encode_queries(STRANGE))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(min_size=1, max_size=300).filter(str.strip), min_size=1, max_size=4))
def test_any_non_blank_text_gives_finite_unit_vectors(
    embedder: YoutuEmbedder, texts: list[str]
) -> None:
    assert_unit_rows(embedder.encode_documents(texts))
    assert_unit_rows(embedder.encode_queries(texts))
