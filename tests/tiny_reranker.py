"""A tiny, randomly initialised cross-encoder (BERT-shaped sequence classification, one label)
on the real MiniLM tokenizer: no reranker weights can be downloaded here."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from youtu_rag.model.profiles import get_profile


def build_tiny_reranker(directory: Path, *, max_positions: int = 64, seed: int = 0) -> Path:
    """Save the checkpoint in ``directory``: pairs longer than ``max_positions`` tokens are cut."""
    source = get_profile("sentence-transformers/all-MiniLM-L6-v2").source
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.model_max_length = max_positions
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        num_labels=1,
    )
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # spread the scores: a random head gives nearly equal ones
        model.classifier.weight.mul_(40)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
