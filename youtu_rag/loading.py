"""Loading a backbone once per process: device and dtype choice, and the shared model cache.

A retriever, a chain and a notebook cell may each hold an embedder over the same 2B model; they
share one set of weights through :func:`load_backbone`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AttentionInterface,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

logger = logging.getLogger(__name__)

#: The attention :func:`load_backbone` switches CPU models with narrow values to.
PADDED_SDPA = "youtu_rag_padded_sdpa"

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
        _use_fused_attention(model, device)
        if device.type == "cpu" and dtype == torch.bfloat16 and not _cpu_has_bf16():
            logger.warning(
                "this CPU has no bfloat16 matmul (AVX-512 BF16 or AMX): bfloat16 will run "
                "several times slower than float32 here"
            )
        backbone = Backbone(model=model, tokenizer=tokenizer, device=device, dtype=dtype)
        _cache[key] = backbone
        return backbone


def _sdpa_with_padded_values(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SDPA, with the values zero-padded to the query/key head size and the output cut back.

    Multi-head latent attention (Youtu, DeepSeek) has values narrower than queries (128 vs 192
    in Youtu-Embedding); SDPA's fused CPU kernel needs one head size, so without this it falls
    back to the unfused math kernel, which is several times slower and materialises every
    attention matrix. Zero value columns give zero output columns, so the result is unchanged.
    """
    width = value.shape[-1]
    target = query.shape[-1]
    if width >= target:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    padded = torch.nn.functional.pad(value, (0, target - width))
    output, weights = sdpa_attention_forward(module, query, key, padded, attention_mask, **kwargs)
    return output[..., :width], weights


AttentionInterface.register(PADDED_SDPA, _sdpa_with_padded_values)


def _use_fused_attention(model: PreTrainedModel, device: torch.device) -> None:
    """Switch a CPU model whose values are narrower than its queries to the padded SDPA.

    Only on CPU: that is where the gain was measured; CUDA has kernels for unequal sizes.
    """
    config = model.config
    qk_dim = getattr(config, "qk_head_dim", None)
    v_dim = getattr(config, "v_head_dim", None)
    if (
        device.type != "cpu"
        or getattr(config, "_attn_implementation", None) != "sdpa"
        or not isinstance(qk_dim, int)
        or not isinstance(v_dim, int)
        or v_dim >= qk_dim
        or not model._can_set_attn_implementation()
    ):
        return
    model.set_attn_implementation(PADDED_SDPA)
    logger.info("values narrower than queries (%d < %d): using %s", v_dim, qk_dim, PADDED_SDPA)


def _cpu_has_bf16() -> bool:
    """Whether oneDNN has a native bfloat16 matmul on this CPU."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else True


def clear_backbone_cache() -> None:
    """Forget every shared model, so the next embedder loads afresh (frees memory)."""
    with _cache_lock:
        _cache.clear()
