"""Native loading of ``utu`` (Youtu-Embedding) checkpoints, against an independent forward pass."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from tests.tiny_youtu import build_tiny_youtu
from youtu_rag import YoutuEmbedder
from youtu_rag.model.loading import RemoteCodeError
from youtu_rag.model.random_checkpoint import REMOTE_CODE_MARKER
from youtu_rag.model.resolution import read_config
from youtu_rag.model.utu import Attention, CheckpointMismatchError, load_utu_model

TEXTS = [
    "What's the weather like?",
    "结算业务系统用户使用",
    "Retrieval augmented generation feeds the best passages to a chat model. " * 6,
    "sky",
]


def reference_forward(
    directory: str, input_ids: torch.Tensor, attention_mask: torch.Tensor, causal: bool
) -> torch.Tensor:
    """A Llama forward pass written from ``config.json`` and the raw tensors, in float64.

    RMSNorm, rotary embeddings (half-split), multi-head attention over the row's non-padding keys
    (and earlier positions only, when ``causal``), SwiGLU MLP, final norm.
    """
    config = json.loads((Path(directory) / "config.json").read_text())
    weights = {k: v.double() for k, v in load_file(Path(directory) / "model.safetensors").items()}
    heads, head_dim = config["num_attention_heads"], config["head_dim"]
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    batch, seq = input_ids.shape

    def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(seq, dtype=torch.float64), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rotate(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    allowed = attention_mask.bool()[:, None, None, :].expand(batch, 1, seq, seq)
    if causal:
        allowed = allowed & torch.ones(seq, seq, dtype=torch.bool).tril()
    hidden = weights["embed_tokens.weight"][input_ids]
    for layer in range(config["num_hidden_layers"]):
        w = {k.split(f"layers.{layer}.", 1)[1]: v for k, v in weights.items() if f"s.{layer}." in k}
        x = rms_norm(hidden, w["input_layernorm.weight"])

        def project(x: torch.Tensor, name: str, w: dict[str, torch.Tensor] = w) -> torch.Tensor:
            out = x @ w[f"self_attn.{name}_proj.weight"].T
            return out.view(batch, seq, heads, head_dim).transpose(1, 2)

        q, k, v = rotate(project(x, "q")), rotate(project(x, "k")), project(x, "v")
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
        scores = scores.masked_fill(~allowed, float("-inf"))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, heads * head_dim)
        hidden = hidden + attended @ w["self_attn.o_proj.weight"].T
        x = rms_norm(hidden, w["post_attention_layernorm.weight"])
        gate = torch.nn.functional.silu(x @ w["mlp.gate_proj.weight"].T)
        hidden = hidden + (gate * (x @ w["mlp.up_proj.weight"].T)) @ w["mlp.down_proj.weight"].T
    return rms_norm(hidden, weights["norm.weight"])


def _batch(directory: str) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer = YoutuEmbedder(directory, device="cpu").backbone.tokenizer
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def _hidden(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        hidden: torch.Tensor = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return hidden.double()


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_native_forward_equals_the_reference(
    tiny_youtu_dir: str, implementation: str, attention: Attention
) -> None:
    ids, mask = _batch(tiny_youtu_dir)
    assert (mask == 0).any(), "the batch must have padding"
    model = load_utu_model(
        tiny_youtu_dir,
        read_config(tiny_youtu_dir),
        torch.float32,
        attention,
        implementation,
    )
    expected = reference_forward(tiny_youtu_dir, ids, mask, causal=attention == "causal")
    real = mask.bool()
    assert (_hidden(model, ids, mask) - expected)[real].abs().max() <= 1e-5


def test_the_embedder_runs_the_published_rule_by_default(tiny_youtu: YoutuEmbedder) -> None:
    assert tiny_youtu.attention == "bidirectional"
    ids, mask = _batch(tiny_youtu.profile.source)
    expected = reference_forward(tiny_youtu.profile.source, ids, mask, causal=False)
    hidden = _hidden(tiny_youtu.backbone.model, ids, mask)
    assert (hidden - expected)[mask.bool()].abs().max() <= 1e-5
    # A later token changes an earlier token's state: attention runs both ways.
    longer = ids.clone()
    longer[0, 3] = (longer[0, 3] + 1) % 500
    changed = _hidden(tiny_youtu.backbone.model, longer, mask)
    assert (changed[0, 1] - hidden[0, 1]).abs().max() > 1e-4


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_a_text_alone_equals_the_same_text_among_longer_ones(
    tiny_youtu_dir: str, attention: Attention
) -> None:
    embedder = YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=8, attention=attention)
    padded_among = [*TEXTS, "a much longer passage about the weather and the stadium " * 30]
    together = embedder.encode_queries(padded_among)
    for index, text in enumerate(TEXTS):
        assert np.abs(embedder.encode_queries(text)[0] - together[index]).max() <= 1e-5


def test_both_attention_modes_share_one_set_of_weights(tiny_youtu_dir: str) -> None:
    bidirectional = YoutuEmbedder(tiny_youtu_dir, device="cpu")
    causal = YoutuEmbedder(tiny_youtu_dir, device="cpu", attention="causal")
    weight = "embed_tokens.weight"
    assert (
        bidirectional.backbone.model.state_dict()[weight].data_ptr()
        == causal.backbone.model.state_dict()[weight].data_ptr()
    )
    assert not np.allclose(bidirectional.encode_queries(TEXTS), causal.encode_queries(TEXTS))


def test_no_checkpoint_code_runs_unless_asked(tmp_path: Path) -> None:
    directory = build_tiny_youtu(tmp_path / "utu")
    marker = directory / REMOTE_CODE_MARKER
    YoutuEmbedder(str(directory), device="cpu").encode_documents("sky")
    assert not marker.exists()
    with pytest.raises(RemoteCodeError, match=r"written for transformers 4\.51.*natively"):
        YoutuEmbedder(str(directory), device="cpu", trust_remote_code=True)
    assert marker.exists()  # the opt-in really did import the checkpoint's code


def _rewrite_weights(directory: Path, rename: dict[str, str | None]) -> None:
    """Replace the single weight file by renamed tensors (``None`` drops one)."""
    tensors = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    renamed = {rename.get(k, k): v for k, v in tensors.items()}
    save_file({k: v for k, v in renamed.items() if k is not None}, directory / "model.safetensors")


def _vectors(directory: Path) -> np.ndarray:
    return YoutuEmbedder(str(directory), device="cpu").encode_queries(TEXTS)


def test_prefixed_sharded_and_broken_checkpoints(tiny_youtu_dir: str, tmp_path: Path) -> None:
    expected = _vectors(Path(tiny_youtu_dir))
    names = list(load_file(Path(tiny_youtu_dir) / "model.safetensors"))

    prefixed = Path(shutil.copytree(tiny_youtu_dir, tmp_path / "prefixed"))
    _rewrite_weights(prefixed, {name: f"model.{name}" for name in names})
    assert np.abs(_vectors(prefixed) - expected).max() <= 1e-6

    sharded = Path(shutil.copytree(tiny_youtu_dir, tmp_path / "sharded"))
    tensors = load_file(sharded / "model.safetensors")
    (sharded / "model.safetensors").unlink()
    save_torch_state_dict(tensors, sharded, max_shard_size="100KB")
    assert len(list(sharded.glob("model-*-of-*.safetensors"))) > 1
    assert (sharded / "model.safetensors.index.json").is_file()
    assert np.abs(_vectors(sharded) - expected).max() <= 1e-6

    missing = Path(shutil.copytree(tiny_youtu_dir, tmp_path / "missing"))
    _rewrite_weights(missing, {"layers.1.mlp.up_proj.weight": None})
    with pytest.raises(CheckpointMismatchError, match=r"missing: layers\.1\.mlp\.up_proj\.weight"):
        _vectors(missing)

    unexpected = Path(shutil.copytree(tiny_youtu_dir, tmp_path / "unexpected"))
    _rewrite_weights(unexpected, {"norm.weight": "final_norm.weight"})
    with pytest.raises(CheckpointMismatchError, match=r"unexpected: final_norm\.weight"):
        _vectors(unexpected)
