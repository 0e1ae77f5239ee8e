"""Pure tensor functions for instruction-masked mean pooling.

The model reads ``prefix + text`` but only the text's tokens enter the mean. A token belongs to
the text when its character span ends past the prefix (CoDiEmb's ``create_text_mask`` rule); the
mask then runs from the first such token to the end of the attended sequence, so leading special
tokens (BOS, ``[CLS]``) are dropped with the prefix while trailing ones (EOS) are kept, exactly as
the published inference script counts. Offsets stay exact where a BPE merge crosses the
prefix/text boundary, where counting the prefix's own tokens would drift by one.
"""

from __future__ import annotations

import torch


def text_mask(
    offset_ends: torch.Tensor, attention_mask: torch.Tensor, prefix_chars: int
) -> torch.Tensor:
    """Which positions are pooled: from the first token that ends past the prefix onwards.

    ``offset_ends`` holds each token's end character offset (special tokens have 0), shape
    (batch, seq); ``attention_mask`` is 1 on real tokens. Returns a 0/1 mask of the same shape.
    """
    attended = attention_mask.bool()
    is_text = (offset_ends > prefix_chars) & attended
    started = torch.cumsum(is_text.int(), dim=1) > 0
    return (started & attended).to(attention_mask.dtype)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (batch, seq, dim) over positions where ``mask`` is 1, in float32.

    The denominator is clamped to 1, so an all-zero mask gives a zero vector, never 0/0.
    """
    weights = mask.to(torch.float32).unsqueeze(-1)
    summed = (hidden.to(torch.float32) * weights).sum(dim=1)
    return summed / weights.sum(dim=1).clamp(min=1.0)


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Unit-length rows; a zero row stays zero instead of becoming NaN."""
    return torch.nn.functional.normalize(vectors, p=2.0, dim=-1)
