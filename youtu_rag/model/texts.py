"""The one input check every embedder, reranker and store runs, kept free of torch so that the
remote backends and the store import it without loading a model's libraries."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

logger = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_texts(texts: str | Iterable[str]) -> list[str]:
    """The texts as a list, or the error that names the first bad one by its index.

    Args:
        texts: one string or an iterable of strings.

    Returns:
        The texts as a list (a single string becomes a list of one).

    A lone surrogate (an undecodable byte of a command line, ``"\\udcff"``, or half of a
    pair) cannot be tokenized or stored: it becomes U+FFFD, as a decoder's ``errors="replace"``
    would have made it, with a warning.

    Raises:
        TypeError: a text is not a string.
        ValueError: a text is empty or whitespace only.
    """
    items = [texts] if isinstance(texts, str) else list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"text at index {index} is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"text at index {index} is empty or whitespace only")
        if _SURROGATE.search(text):
            items[index] = _SURROGATE.sub("\ufffd", text)
            logger.warning(
                "text at index %d holds undecodable characters; each became U+FFFD", index
            )
    return items
