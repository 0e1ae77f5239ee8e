"""Youtu-Embedding's ``utu`` checkpoints, run natively on transformers' own Llama code.

The published checkpoint (``model_type: "utu"``) is a Llama-shaped decoder whose remote code was
written for transformers 4.51 and no longer imports. Its config fields are exactly
``LlamaConfig``'s, so the faithful way to run it is ``LlamaModel`` with those fields and weights,
with the attention the model was trained and evaluated with: bidirectional (``is_causal=False``).
No code from the checkpoint is executed on this path.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, cast

import torch
from transformers import LlamaConfig, LlamaModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.llama.modeling_llama import LlamaAttention

from youtu_rag.model.defaults import UTU_MODEL_TYPE as UTU_MODEL_TYPE
from youtu_rag.model.defaults import Attention as Attention
from youtu_rag.model.defaults import is_utu as is_utu

logger = logging.getLogger(__name__)

#: Config keys that describe the checkpoint's packaging, not the network.
_PACKAGING_KEYS = ("model_type", "architectures", "auto_map", "transformers_version")

#: Weights a ``UTUForCausalLM`` save carries beyond the encoder; an embedding never reads them.
_IGNORED_WEIGHTS = ("lm_head.weight",)

_BIDIRECTIONAL_IMPLEMENTATIONS = ("sdpa", "eager")


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not fill the network exactly."""


class BidirectionalLlamaModel(LlamaModel):  # type: ignore[no-untyped-call]
    """``LlamaModel`` in which every token attends to every non-padding token of its row.

    A 2-D padding mask is turned into an additive (batch, 1, 1, seq) key mask, which transformers
    uses as given (no causal mask added) under SDPA and eager attention, at O(seq) memory rather
    than the O(seq^2) of a full square mask. Flash attention takes the 2-D mask and reads
    ``is_causal`` from each attention module, which is switched off here.
    """

    def __init__(self, config: LlamaConfig) -> None:
        """A Llama network whose every attention layer is non-causal.

        Args:
            config: the checkpoint's fields as a ``LlamaConfig``.
        """
        super().__init__(config)
        config.is_causal = False
        for layer in self.layers:
            cast(LlamaAttention, layer.self_attn).is_causal = False

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        """Run with a padding-only mask: every token sees every non-padding token.

        Args:
            input_ids: (batch, seq) token ids.
            attention_mask: (batch, seq) 1 on tokens, 0 on padding (``None``: all tokens), or
                an additive 4-D mask used as given.
            **kwargs: further ``LlamaModel.forward`` arguments.

        Returns:
            ``LlamaModel``'s output; ``last_hidden_state`` holds the states.

        Raises:
            ValueError: the attention implementation cannot run bidirectionally.
        """
        if not check_bidirectional(self.config._attn_implementation):
            reference = input_ids if input_ids is not None else kwargs["inputs_embeds"][..., 0]
            if attention_mask is None:
                attention_mask = torch.ones_like(reference, dtype=torch.long)
            if attention_mask.dim() == 2:
                attention_mask = key_padding_mask(attention_mask, self.dtype)
        output: BaseModelOutputWithPast = super().forward(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        )
        return output


def check_bidirectional(implementation: str) -> bool:
    """Whether ``implementation`` is flash attention, which takes the 2-D mask as it is.

    Args:
        implementation: transformers' attention implementation name.

    Returns:
        ``True`` for flash attention, ``False`` for SDPA and eager (they get a 4-D mask).

    Raises:
        ValueError: any other implementation, which would not honour the key mask
            bidirectionally.
    """
    if implementation.startswith("flash_attention"):
        return True
    if implementation in _BIDIRECTIONAL_IMPLEMENTATIONS:
        return False
    raise ValueError(
        f"attention implementation {implementation!r} cannot run bidirectionally here; "
        f"use one of {', '.join(_BIDIRECTIONAL_IMPLEMENTATIONS)} or flash_attention_2"
    )


def key_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (batch, 1, 1, seq) mask, so no query ever reads a padding key.

    Args:
        attention_mask: (batch, seq), 1 on tokens and 0 on padding.
        dtype: the model's dtype.

    Returns:
        0 where ``attention_mask`` is 1, the dtype's minimum on padding.
    """
    blocked = (attention_mask == 0)[:, None, None, :]
    return torch.zeros(blocked.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        blocked, torch.finfo(dtype).min
    )


def llama_config(config: dict[str, Any]) -> LlamaConfig:
    """The ``LlamaConfig`` of a ``utu`` ``config.json``: the same fields, the packaging dropped.

    Args:
        config: the parsed ``config.json``.

    Returns:
        The config.
    """
    fields = {key: value for key, value in config.items() if key not in _PACKAGING_KEYS}
    if fields.get("rope_scaling", 0) is None:
        del fields["rope_scaling"]  # null in the published config; LlamaConfig warns on it
    return LlamaConfig.from_dict(fields)


def network_class(attention: Attention) -> type[LlamaModel]:
    """The network that attends as ``attention`` says.

    Args:
        attention: ``"bidirectional"`` or ``"causal"``.

    Returns:
        :class:`BidirectionalLlamaModel` or transformers' ``LlamaModel``.
    """
    return BidirectionalLlamaModel if attention == "bidirectional" else LlamaModel


def with_attention(model: PreTrainedModel, attention: Attention) -> PreTrainedModel:
    """A network over the very same weight tensors (no copy) that attends as ``attention`` says.

    Lets one loaded checkpoint serve both attention modes, e.g. for ``youtu-rag verify``, at the
    memory cost of one.

    Args:
        model: a loaded ``utu`` network.
        attention: the mode of the twin.

    Returns:
        The twin network, in eval mode.
    """
    config = cast(LlamaConfig, copy.deepcopy(model.config))
    config.is_causal = attention == "causal"
    with torch.device("meta"):
        twin = network_class(attention)(config)
    twin.load_state_dict(model.state_dict(), strict=True, assign=True)
    # Rotary frequencies are a non-persistent buffer, absent from the state dict.
    twin.register_module("rotary_emb", model.get_submodule("rotary_emb"))
    twin.train(False)
    return twin


def load_utu_model(
    source: str,
    config: dict[str, Any],
    dtype: torch.dtype,
    attention: Attention,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Build the Llama network of a ``utu`` checkpoint and fill it with the checkpoint's weights.

    Weight names may carry the ``model.`` prefix or not; single-file and sharded safetensors both
    load. Any network tensor the checkpoint lacks, or any checkpoint tensor the network has no
    place for, is an error naming it: a layer left at its random initialisation would give
    plausible-looking wrong vectors.

    Args:
        source: hub id or local directory.
        config: its parsed ``config.json``.
        dtype: the weights' dtype.
        attention: ``"bidirectional"`` or ``"causal"``.
        attn_implementation: transformers' attention implementation (default: its choice).

    Returns:
        The loaded network.

    Raises:
        CheckpointMismatchError: a tensor is missing, unexpected or of the wrong shape.
        ValueError: the attention implementation cannot run bidirectionally.
    """
    network = network_class(attention)
    if attention == "bidirectional" and attn_implementation is not None:
        check_bidirectional(attn_implementation)
    loaded = network.from_pretrained(
        source,
        config=llama_config(config),
        dtype=dtype,
        attn_implementation=attn_implementation,
        output_loading_info=True,
        use_safetensors=True,
    )
    model, info = cast(tuple[PreTrainedModel, dict[str, Any]], loaded)
    missing = sorted(info["missing_keys"])
    unexpected = sorted(set(info["unexpected_keys"]) - set(_IGNORED_WEIGHTS))
    mismatched = sorted(str(entry) for entry in info.get("mismatched_keys", ()))
    if missing or unexpected or mismatched:
        problems = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", mismatched),
            )
            if names
        ]
        raise CheckpointMismatchError(
            f"{source} does not match the utu (Llama) network; " + "; ".join(problems)
        )
    logger.info("loaded %s natively as %s", source, type(model).__name__)
    return model
