"""Loading a backbone once per process: device and dtype choice, and the shared model cache.

It loads what :mod:`youtu_rag.model.resolution` resolved, reading no config file again.

A retriever, a chain and a notebook cell may each hold an embedder over the same 2B model; they
share one set of weights through :func:`load_backbone`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers import (
    CONFIG_MAPPING,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from youtu_rag.model.resolution import ResolvedModel
from youtu_rag.model.utu import Attention, is_utu, load_utu_model, with_attention

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
    #: ``None`` for models that are not ``utu`` checkpoints: they attend as they were built.
    attention: Attention | None = None


class DeviceUnavailableError(RuntimeError):
    """The device asked for does not exist here; the message says why in one sentence.

    A RuntimeError, not a ValueError: pydantic passes it through the adapters' validation as it
    is instead of wrapping it in a ValidationError.
    """


def check_available(device: torch.device) -> None:
    """Refuse a CUDA or MPS device this torch build or this machine does not have, before
    torch fails deep inside model loading with an assertion.

    Raises:
        DeviceUnavailableError: the device is missing, with the reason and what to do.
    """
    if device.type == "cuda" and not torch.cuda.is_available():
        why = (
            "no CUDA GPU is visible to it"
            if torch.version.cuda is not None
            else "it was built without CUDA"
        )
        raise DeviceUnavailableError(
            f"device {str(device)!r} is not available: this torch ({torch.__version__}) "
            f"cannot use CUDA because {why}; use device='cpu' or leave the device unset"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError(
            f"device 'mps' is not available with this torch ({torch.__version__}) on this "
            "machine; use device='cpu' or leave the device unset"
        )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA, then MPS, then CPU.

    Args:
        device: a device or its name; ``None`` picks the best available.

    Returns:
        The device.

    Raises:
        DeviceUnavailableError: the device is named but this torch or machine has none.
    """
    if device is not None:
        chosen = torch.device(device)
        check_available(chosen)
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The given dtype, else bfloat16 on CUDA and float32 elsewhere.

    Args:
        dtype: a dtype or its name (``float32``, ``bf16``, ...); ``None`` for the default.
        device: the device it will run on.

    Returns:
        The dtype.

    Raises:
        ValueError: an unknown dtype name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


_cache: dict[tuple[str, str, torch.dtype, bool, Attention | None], Backbone] = {}
_cache_lock = threading.Lock()


class RemoteCodeError(RuntimeError):
    """The checkpoint's own modelling code could not be imported."""


def load_backbone(
    model: ResolvedModel,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool,
    attention: Attention | None = None,
) -> Backbone:
    """Load (or reuse) the model and tokenizer of a resolved model, from its weights' location.

    Its ``config.json`` was read once, when it was resolved: the fields go to transformers as a
    config object, so loading reads that file no second time.

    A ``utu`` checkpoint (Youtu-Embedding) is built natively on transformers' Llama code with
    ``attention`` (default bidirectional) unless the caller asks for its remote code; any other
    model goes through ``AutoModel`` and attends as it was built.

    Args:
        model: from :func:`~youtu_rag.model.resolution.resolve_model`.
        device: where the model runs.
        dtype: its weights' dtype.
        trust_remote_code: run the checkpoint's own modelling code.
        attention: for ``utu`` checkpoints, ``"bidirectional"`` (default) or ``"causal"``.

    Returns:
        The backbone, shared with every other caller of the same arguments.

    Raises:
        OSError: the checkpoint cannot be found.
        ValueError: ``attention`` for a model that is not a natively loaded ``utu``
            checkpoint, or a tokenizer without offsets (not a fast tokenizer).
        RemoteCodeError: a ``utu`` checkpoint's own code does not import here.
    """
    source, config = model.source, dict(model.config)
    native = model.utu and not trust_remote_code
    if attention is not None and not native:
        raise ValueError(
            f"attention={attention!r} applies to utu checkpoints loaded natively; {source} "
            f"(model_type {config.get('model_type')!r}"
            f"{', trust_remote_code' if trust_remote_code else ''}) attends as it was built"
        )
    if native:
        attention = attention or "bidirectional"
    key = (source, str(device), dtype, trust_remote_code, attention)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        twin = _cached_other_attention(key) if native else None
        if twin is not None:
            tokenizer: PreTrainedTokenizerBase = twin.tokenizer
            network = with_attention(twin.model, attention or "bidirectional")
        elif native:
            # The publisher's tokenizer_config names PreTrainedTokenizerFast; reading it directly
            # keeps AutoTokenizer from resolving the unknown "utu" model type through auto_map.
            tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
            network = load_utu_model(source, config, dtype, attention or "bidirectional")
        else:
            known = None if trust_remote_code else transformers_config(config)
            tokenizer = AutoTokenizer.from_pretrained(
                source, trust_remote_code=trust_remote_code, **({"config": known} if known else {})
            )
            network = _load_auto_model(source, config, known, dtype, trust_remote_code)
        if not tokenizer.is_fast:
            raise ValueError(
                f"{source} has no fast tokenizer; masking the instruction needs token offsets"
            )
        torch.nn.Module.to(network, device).train(False)
        if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_bf16():
            logger.warning(
                "this CPU has no bfloat16 matmul (AVX-512 BF16 or AMX): bfloat16 will run "
                "several times slower than float32 here"
            )
        backbone = Backbone(
            model=network, tokenizer=tokenizer, device=device, dtype=dtype, attention=attention
        )
        _cache[key] = backbone
        return backbone


def _cached_other_attention(
    key: tuple[str, str, torch.dtype, bool, Attention | None],
) -> Backbone | None:
    """The same checkpoint already loaded with the other attention mode, whose weights a new
    backbone can share."""
    source, device, dtype, trust_remote_code, attention = key
    other: Attention = "causal" if attention == "bidirectional" else "bidirectional"
    return _cache.get((source, device, dtype, trust_remote_code, other))


def transformers_config(config: dict[str, Any]) -> PretrainedConfig | None:
    """The config object transformers would build from these ``config.json`` fields, or
    ``None`` for a model type it does not know (it then reads the file itself)."""
    model_type = str(config.get("model_type"))
    if model_type not in CONFIG_MAPPING:
        return None
    built: PretrainedConfig = CONFIG_MAPPING[model_type].from_dict(config)
    return built


def _load_auto_model(
    source: str,
    config: dict[str, Any],
    known: PretrainedConfig | None,
    dtype: torch.dtype,
    trust_remote_code: bool,
) -> PreTrainedModel:
    """``AutoModel``, turning a ``utu`` checkpoint's failing remote code into a clear error."""
    if trust_remote_code:
        logger.info("loading %s with trust_remote_code=True", source)
    try:
        options: dict[str, Any] = {"config": known} if known is not None else {}
        model: PreTrainedModel = AutoModel.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code, **options
        )
    except (ImportError, AttributeError) as error:
        if not (trust_remote_code and is_utu(config)):
            raise
        raise RemoteCodeError(
            f"the modelling code shipped with {source} (auto_map "
            f"{config.get('auto_map', {}).get('AutoModel')!r}) cannot be imported under "
            f"transformers {transformers.__version__}: it was written for transformers "
            f"{config.get('transformers_version', '4.51')} ({error}). Leave trust_remote_code "
            "off: youtu-rag loads utu checkpoints natively, with no remote code."
        ) from error
    return model


def cpu_has_bf16() -> bool:
    """Whether oneDNN has a native bfloat16 matmul on this CPU."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else True


def clear_backbone_cache() -> None:
    """Forget every shared model, so the next embedder loads afresh (frees memory)."""
    with _cache_lock:
        _cache.clear()
