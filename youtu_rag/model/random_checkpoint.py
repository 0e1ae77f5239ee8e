"""Randomly initialised ``utu`` checkpoints in the published Youtu-Embedding layout.

The real weights cannot be downloaded everywhere (CI, air-gapped machines), yet the loader, the
attention rule and the throughput of the real shape must be checked. A checkpoint built here has
what ``tencent/Youtu-Embedding`` ships: a ``config.json`` with ``model_type: "utu"`` and the
``auto_map`` to the publisher's own modelling code, ``model.safetensors`` with Llama weight names,
and a byte-level BPE tokenizer that adds a BOS through its post-processor. Its vocabulary is a
small one trained here, not Llama-3's, so token counts differ from the real model's.

The ``auto_map`` modules written beside it stand in for the publisher's code: they record that
they ran in ``REMOTE_CODE_MARKER`` and then fail exactly as the real ``modeling_youtu.py`` does
under transformers 5 (its imports no longer exist), so a test can prove that the native path
runs no checkpoint code and that opting in to remote code fails with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaModel, PreTrainedTokenizerFast

from youtu_rag.model.utu import UTU_MODEL_TYPE, llama_config

#: Written by the stand-in remote code when (and only when) it is imported.
REMOTE_CODE_MARKER = "remote_code_ran"


@dataclass(frozen=True)
class UtuShape:
    """The network's sizes; the defaults are the published checkpoint's."""

    hidden_size: int = 2048
    intermediate_size: int = 8192
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: int = 64
    vocab_size: int = 128256


#: A few layers of the real width, small enough to build and run in a test.
TINY_SHAPE = UtuShape(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    vocab_size=600,
)

# Training text for the BPE: English and CJK prose, the instruction template, and "Query:?"
# often enough that ":?" becomes one token, so a prefix ending in ":" merges with a text
# starting with "?" (the BPE-boundary case of instruction masking).
_CORPUS = [
    "Instruction: Given a search query, retrieve passages that answer the question \nQuery:",
    "Query:?? Query:?! Query:?why Query:?what",
    "The weather is lovely today. It's so sunny outside! He drove to the stadium.",
    "What's the weather like? Would you want to play a game?",
    "结算业务系统用户使用 查询出该时间范围内到期的账户冻结列表。",
    "Retrieval augmented generation feeds the best passages to a chat model.",
] * 50

_SPECIAL_TOKENS = ["<|end_of_text|>", "<|begin_of_text|>", "<|finetune_right_pad_id|>"]

_CONFIGURATION_CODE = """\
from pathlib import Path

Path({marker!r}).write_text("configuration_youtu")

from transformers.configuration_utils import PretrainedConfig


class UTUConfig(PretrainedConfig):
    model_type = "utu"
"""

# The import block of the publisher's modeling_youtu.py (written for transformers 4.51).
_MODELING_CODE = """\
from pathlib import Path

Path({marker!r}).write_text("modeling_youtu")

from transformers.modeling_attn_mask_utils import AttentionMaskConverter
from transformers.utils import LossKwargs
"""


def build_tokenizer(vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """A byte-level BPE that adds a BOS, with a pad token, trained on a small fixed corpus.

    Args:
        vocab_size: the most tokens the BPE may learn.

    Returns:
        The tokenizer, padding on the right.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _CORPUS,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=_SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    eos, bos, pad = _SPECIAL_TOKENS
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bpe.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe, bos_token=bos, eos_token=eos, pad_token=pad
    )
    tokenizer.padding_side = "right"
    return tokenizer


def utu_config(shape: UtuShape, tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """The published ``config.json`` at ``shape``'s sizes.

    Args:
        shape: the network's sizes.
        tokenizer: supplies the BOS and EOS ids.

    Returns:
        The config, as JSON.
    """
    return {
        "architectures": ["UTUModel"],
        "auto_map": {
            "AutoConfig": "configuration_youtu.UTUConfig",
            "AutoModel": "modeling_youtu.UTUModel",
            "AutoModelForCausalLM": "modeling_youtu.UTUForCausalLM",
        },
        "model_type": UTU_MODEL_TYPE,
        **asdict(shape),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-08,
        "rope_scaling": None,
        "rope_theta": 1600000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": "4.51.3",
        "use_cache": False,
    }


def random_weights(config: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random Llama weights for ``config``, named as the published ``UTUModel`` names them.

    Args:
        config: a ``utu`` config from :func:`utu_config`.
        seed: the random seed.

    Returns:
        Tensor name -> tensor.
    """
    torch.manual_seed(seed)
    network = LlamaModel(llama_config(config))
    return {name: tensor.contiguous() for name, tensor in network.state_dict().items()}


def build_random_utu(directory: str | Path, shape: UtuShape = TINY_SHAPE, *, seed: int = 0) -> Path:
    """Write a random ``utu`` checkpoint of ``shape`` to ``directory``.

    Args:
        directory: created if missing.
        shape: the network's sizes.
        seed: the weights' random seed.

    Returns:
        The directory, holding config, weights, tokenizer and stand-in remote code.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(min(shape.vocab_size, 600))
    if tokenizer.vocab_size > shape.vocab_size:
        shape = replace(shape, vocab_size=len(tokenizer))
    config = utu_config(shape, tokenizer)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(random_weights(config, seed), str(path / "model.safetensors"), {"format": "pt"})
    tokenizer.save_pretrained(path)
    marker = str((path / REMOTE_CODE_MARKER).resolve())
    (path / "configuration_youtu.py").write_text(_CONFIGURATION_CODE.format(marker=marker))
    (path / "modeling_youtu.py").write_text(_MODELING_CODE.format(marker=marker))
    return path
