"""The published Youtu-Embedding inference algorithm (the "seed" script), restated once.

Two users, one copy: ``youtu-rag bench encode`` times it as its baseline, and the test suite uses
it as the oracle the embedder is checked against. It ships with the package, so the benchmark
runs from a plain ``pip install``. Its known defects (no batching, NaN for an empty text, silent
truncation at 1024 tokens) are kept on purpose: it is the baseline, not a second embedder.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: The published inference script's truncation length.
SEED_MAX_LENGTH = 1024


@torch.inference_mode()
def seed_encode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    instruction: str = "",
    max_length: int = SEED_MAX_LENGTH,
) -> np.ndarray:
    """The published Youtu-Embedding algorithm, as its script runs it.

    The whole list is one right-padded batch truncated at ``max_length``; the first
    ``len(tokenize(instruction))`` positions (with special tokens) are zeroed in the attention
    mask, then the hidden states are averaged over the mask (sum / count) and L2-normalised.
    Its known defects (no batching, NaN for an empty text) are kept on purpose.
    """
    inputs = tokenizer(
        [instruction + text for text in texts],
        padding=True,
        truncation=True,
        max_length=max_length,
        add_special_tokens=True,
        return_tensors="pt",
    ).to(model.device)
    hidden = model(**inputs)[0]
    instruction_tokens = len(tokenizer(instruction, add_special_tokens=True)["input_ids"])
    mask = inputs["attention_mask"].clone()
    mask[:, :instruction_tokens] = 0
    summed = torch.sum(hidden * mask.unsqueeze(-1).to(hidden.dtype), dim=1)
    mean = summed / mask.sum(dim=1, keepdim=True).to(hidden.dtype)
    vectors: np.ndarray = torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy()
    return vectors
