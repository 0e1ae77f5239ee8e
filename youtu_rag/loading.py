"""Loading a backbone once per process: device and dtype choice, and the shared model cache.

A retriever, a chain and a notebook cell may each hold an embedder over the same 2B model; they
share one set of weights through :func:`load_backbone`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class Backbone:
    """A loaded model and its tokenizer, in eval mode on their device."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA, then MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The given dtype, else bfloat16 on CUDA and float32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


_cache: dict[tuple[str, str, torch.dtype, bool], Backbone] = {}
_cache_lock = threading.Lock()


def load_backbone(
    source: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool
) -> Backbone:
    """Load (or reuse) the model and tokenizer at ``source``, a hub id or a local directory."""
    key = (source, str(device), dtype, trust_remote_code)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        if trust_remote_code:
            logger.info("loading %s with trust_remote_code=True", source)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        if not tokenizer.is_fast:
            raise ValueError(
                f"{source} has no fast tokenizer; masking the instruction needs token offsets"
            )
        model = AutoModel.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code)
        model.to(device).eval()
        backbone = Backbone(model=model, tokenizer=tokenizer, device=device, dtype=dtype)
        _cache[key] = backbone
        return backbone


def clear_backbone_cache() -> None:
    """Forget every shared model, so the next embedder loads afresh (frees memory)."""
    with _cache_lock:
        _cache.clear()
