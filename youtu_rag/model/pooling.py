"""Pure tensor functions for instruction-masked mean pooling.

The model reads ``prefix + text`` but only the text's tokens enter the mean. A token belongs to
the text when its character span ends past the prefix (CoDiEmb's ``create_text_mask`` rule); the
mask then runs from the first such token to the end of the attended sequence, so leading special
tokens (BOS, ``[CLS]``) are dropped with the prefix while trailing ones (EOS) are kept, exactly as
the published inference script counts. Offsets stay exact where a BPE merge crosses the
prefix/text boundary, where counting the prefix's own tokens would drift by one.

Which positions are pooled is one question (:func:`text_mask`); how they are reduced to one
vector is another (:func:`pool`: the mean, the first or the last of them), so every reduction
sentence-transformers checkpoints name works with the instruction masked out.
"""

from __future__ import annotations

from typing import Literal

import torch

from youtu_rag.model.defaults import POOLING_MODES as POOLING_MODES
from youtu_rag.model.defaults import PoolingMode as PoolingMode


def text_mask(
    offset_ends: torch.Tensor, attention_mask: torch.Tensor, prefix_chars: int
) -> torch.Tensor:
    """Which positions are pooled: from the first token that ends past the prefix onwards.

    Args:
        offset_ends: each token's end character offset (special tokens have 0), shape
            (batch, seq).
        attention_mask: 1 on real tokens, 0 on padding.
        prefix_chars: the prefix's length in characters.

    Returns:
        A 0/1 mask of the same shape and dtype as ``attention_mask``.
    """
    attended = attention_mask.bool()
    is_text = (offset_ends > prefix_chars) & attended
    started = torch.cumsum(is_text.int(), dim=1) > 0
    return (started & attended).to(attention_mask.dtype)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` over the positions where ``mask`` is 1, in float32.

    Args:
        hidden: states of shape (batch, seq, dim).
        mask: 0/1 of shape (batch, seq).

    Returns:
        A (batch, dim) float32 tensor; an all-zero mask row gives a zero vector, never 0/0.
    """
    weights = mask.to(torch.float32).unsqueeze(-1)
    summed = (hidden.to(torch.float32) * weights).sum(dim=1)
    return summed / weights.sum(dim=1).clamp(min=1.0)


def kept_position(mask: torch.Tensor, which: Literal["first", "last"]) -> torch.Tensor:
    """Each row's first or last position where ``mask`` is 1.

    Args:
        mask: 0/1 of shape (batch, seq), at least one 1 per row.
        which: ``"first"`` (``[CLS]`` pooling) or ``"last"`` (last-token pooling).

    Returns:
        A (batch,) tensor of positions.
    """
    kept = mask.int()
    if which == "first":
        return kept.argmax(dim=1)
    return kept.shape[1] - 1 - kept.flip(dims=(1,)).argmax(dim=1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: PoolingMode) -> torch.Tensor:
    """One float32 vector per row of ``hidden`` (batch, seq, dim) from the positions ``mask``
    keeps.

    Args:
        hidden: the model's last hidden states.
        mask: 0/1 of shape (batch, seq); every row must keep at least one position.
        mode: ``"mean"``, ``"cls"`` (first kept position) or ``"lasttoken"`` (last kept one).

    Returns:
        A (batch, dim) float32 tensor, not yet normalised.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode == "mean":
        return masked_mean(hidden, mask)
    if mode not in ("cls", "lasttoken"):
        raise ValueError(f"unknown pooling mode {mode!r}; use one of {POOLING_MODES}")
    index = kept_position(mask, "first" if mode == "cls" else "last")
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index.to(hidden.device)].to(torch.float32)


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Unit-length rows; a zero row stays zero instead of becoming NaN.

    Args:
        vectors: a (batch, dim) tensor.

    Returns:
        The rows scaled to length 1.
    """
    return torch.nn.functional.normalize(vectors, p=2.0, dim=-1)
