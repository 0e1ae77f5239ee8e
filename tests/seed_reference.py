"""The published Youtu-Embedding inference script's algorithm, restated as the parity reference.

One padded batch (right padding, truncation at ``max_length``), the model's last hidden state,
the first ``len(tokenize(prefix, add_special_tokens=True))`` positions zeroed in the attention
mask, mean over the mask, L2 normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.no_grad()
def seed_encode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    prefix: str,
    max_length: int = 1024,
) -> np.ndarray:
    inputs = tokenizer(
        [prefix + text for text in texts],
        padding=True,
        truncation=True,
        return_tensors="pt",
        max_length=max_length,
        add_special_tokens=True,
    )
    hidden = model(**inputs)[0]
    prefix_ids = tokenizer(
        prefix, padding=False, truncation=True, max_length=max_length, add_special_tokens=True
    )["input_ids"]
    mask = inputs["attention_mask"].clone()
    mask[:, : len(prefix_ids)] = 0
    summed = torch.sum(hidden * mask.unsqueeze(-1).float(), dim=1)
    embeddings = summed / mask.sum(dim=1, keepdim=True).float()
    return torch.nn.functional.normalize(embeddings, dim=-1).numpy()
