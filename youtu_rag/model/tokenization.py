"""Tokenization that no other thread can disturb.

A fast tokenizer keeps its truncation and padding settings on its Rust backend, and transformers
rewrites them on every call. Two threads sharing one tokenizer (two embedders over one backbone
with different ``max_length``, or a text splitter counting tokens while a search embeds) overwrite
each other's settings between the set and the encode: texts come back untruncated (a tensor size
error in the model) or truncated at the other caller's length (wrong vectors, no error).

So the core never tokenizes through the shared tokenizer. Each tokenizer gets one private copy of
its backend, used under its own lock: truncation is set and the texts encoded in one step that no
other caller can interleave. The Rust encoder runs without the GIL, so model forward passes of
other threads go on while one thread tokenizes; only tokenization itself is serialised, and it is
a small share of the time an embedding takes. One copy per tokenizer, not per thread, keeps the
memory cost to one extra vocabulary.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

from tokenizers import Encoding, Tokenizer
from transformers import PreTrainedTokenizerBase


@dataclass
class _Private:
    backend: Tokenizer
    lock: threading.Lock = field(default_factory=threading.Lock)


_copies: weakref.WeakKeyDictionary[PreTrainedTokenizerBase, _Private] = weakref.WeakKeyDictionary()
_copies_lock = threading.Lock()


def _private(tokenizer: PreTrainedTokenizerBase) -> _Private:
    with _copies_lock:
        private = _copies.get(tokenizer)
        if private is None:
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if not isinstance(backend, Tokenizer):
                raise ValueError(
                    f"{type(tokenizer).__name__} is not a fast tokenizer; masking the "
                    "instruction needs token offsets"
                )
            copy = Tokenizer.from_str(backend.to_str())
            copy.no_padding()
            copy.no_truncation()
            copy.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
            private = _Private(copy)
            _copies[tokenizer] = private
        return private


def encode_batch(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    *,
    max_length: int | None,
    add_special_tokens: bool = True,
) -> list[Encoding]:
    """Encode ``texts`` as ``tokenizer(texts, truncation=True, max_length=...)`` would.

    ``max_length=None`` does not truncate. Special tokens count towards ``max_length``; a
    truncated text's ``overflowing`` is not empty. Safe to call from any number of threads.
    """
    private = _private(tokenizer)
    with private.lock:
        _truncate(private.backend, tokenizer, max_length)
        return private.backend.encode_batch(texts, add_special_tokens=add_special_tokens)


@dataclass(frozen=True)
class UnknownTokens:
    """How much of the text a tokenizer could not read: tokens it mapped to its unknown token
    (``[UNK]``), among the tokens of the texts themselves (special tokens not counted). A model
    embeds such text as noise without any error, e.g. Chinese on an English WordPiece model."""

    unknown: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        return self.unknown / self.total if self.total else 0.0

    def __add__(self, other: UnknownTokens) -> UnknownTokens:
        return UnknownTokens(self.unknown + other.unknown, self.total + other.total)


def unknown_tokens(tokenizer: PreTrainedTokenizerBase, encodings: list[Encoding]) -> UnknownTokens:
    """Unknown tokens among the non-special tokens of ``encodings`` (from :func:`encode_batch`
    on ``tokenizer``); none for a tokenizer without an unknown token (byte-level BPE)."""
    unknown_id = tokenizer.unk_token_id
    total = 0
    unknown = 0
    for encoding in encodings:
        specials = sum(encoding.special_tokens_mask)
        total += len(encoding.ids) - specials
        if unknown_id is not None:
            unknown += encoding.ids.count(unknown_id)
    return UnknownTokens(unknown, total)


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Tokens of ``text`` without special tokens, as ``len(tokenizer.tokenize(text))``.

    For text splitters: no truncation, no "sequence length is longer than the specified maximum"
    warning, and no change to the shared tokenizer's settings.
    """
    private = _private(tokenizer)
    with private.lock:
        _truncate(private.backend, tokenizer, None)
        return len(private.backend.encode(text, add_special_tokens=False))


def _truncate(
    backend: Tokenizer, tokenizer: PreTrainedTokenizerBase, max_length: int | None
) -> None:
    if max_length is None:
        if backend.truncation is not None:
            backend.no_truncation()
    else:
        backend.enable_truncation(
            max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side
        )
