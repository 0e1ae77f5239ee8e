"""Build a tiny, randomly initialised model of the real ``youtu`` architecture, with a small
byte-level BPE tokenizer that adds a BOS, saved as a local model directory."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, YoutuConfig, YoutuModel

# Training text for the BPE: English and CJK prose, the instruction template, and "Query:?"
# often enough that ":?" becomes one token, so a prefix ending in ":" merges with a text
# starting with "?" (the boundary case).
_CORPUS = [
    "Instruction: Given a search query, retrieve passages that answer the question \nQuery:",
    "Query:?? Query:?! Query:?why Query:?what",
    "The weather is lovely today. It's so sunny outside! He drove to the stadium.",
    "What's the weather like? Would you want to play a game?",
    "结算业务系统用户使用 查询出该时间范围内到期的账户冻结列表。",
    "Retrieval augmented generation feeds the best passages to a chat model.",
] * 50


def build_tiny_youtu(directory: Path, seed: int = 0) -> Path:
    """Save a tiny youtu model and tokenizer to ``directory`` and return it."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _CORPUS,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<pad>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    bos_id = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.padding_side = "right"
    config = YoutuConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        kv_lora_rank=16,
        q_lora_rank=32,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        qk_head_dim=24,
        head_dim=8,
        v_head_dim=16,
        max_position_embeddings=2048,
        bos_token_id=bos_id,
        eos_token_id=bpe.token_to_id("</s>"),
        pad_token_id=bpe.token_to_id("<pad>"),
    )
    torch.manual_seed(seed)
    model = YoutuModel(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
