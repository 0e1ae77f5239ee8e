"""The embedder on the tiny random ``utu`` checkpoint, against the published algorithm."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from youtu_rag import YoutuEmbedder, get_profile
from youtu_rag.measure.seed_baseline import seed_encode
from youtu_rag.model.instructions import CMTEB_INSTRUCTIONS, DEFAULT_QUERY_TASK, format_prefix

QUERIES = [
    "What's the weather like?",
    "结算业务系统用户使用",
    "Which passages explain how retrieval augmented generation feeds a chat model? " * 12,
    "sky",
    "Would you want to play a game?",
]
DOCUMENTS = [
    "The weather is lovely today.",
    "查询出该时间范围内到期的账户冻结列表。" * 20,
    "He drove to the stadium.",
    "Retrieval augmented generation feeds the best passages to a chat model. " * 40,
    "x",
]


def test_queries_match_the_seed_algorithm_across_batches(tiny_youtu: YoutuEmbedder) -> None:
    assert tiny_youtu.batch_size == 2
    backbone = tiny_youtu.backbone
    expected = seed_encode(backbone.model, backbone.tokenizer, QUERIES, tiny_youtu.query_prefix)
    actual = tiny_youtu.encode_queries(QUERIES)
    assert actual.dtype == np.float32 and actual.shape == (len(QUERIES), tiny_youtu.dimension)
    assert np.abs(actual - expected).max() <= 1e-5


def test_documents_match_the_seed_algorithm_across_batches(tiny_youtu: YoutuEmbedder) -> None:
    backbone = tiny_youtu.backbone
    expected = seed_encode(backbone.model, backbone.tokenizer, DOCUMENTS, "")
    assert np.abs(tiny_youtu.encode_documents(DOCUMENTS) - expected).max() <= 1e-5


def test_default_query_prefix_is_the_published_one(tiny_youtu: YoutuEmbedder) -> None:
    assert tiny_youtu.query_prefix == (
        "Instruction: Given a search query, retrieve passages that answer the question \nQuery:"
    )
    assert tiny_youtu.document_prefix == ""


def test_the_prefix_changes_the_vector_but_is_not_pooled(tiny_youtu: YoutuEmbedder) -> None:
    with_prefix = tiny_youtu.encode_queries("sky")
    without = tiny_youtu.encode_documents("sky")
    # Attention lets the prefix steer the text's states, so the vectors differ...
    assert np.abs(with_prefix - without).max() > 1e-3
    # ...and the pooled tokens are exactly the text's: recompute the mean by hand.
    tokenizer, model = tiny_youtu.backbone.tokenizer, tiny_youtu.backbone.model
    prefix = tiny_youtu.query_prefix
    n_prefix = len(tokenizer(prefix)["input_ids"])
    ids = tokenizer(prefix + "sky", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state[0]
    manual = torch.nn.functional.normalize(hidden[n_prefix:].mean(dim=0), dim=-1)
    assert np.abs(with_prefix[0] - manual.numpy()).max() <= 1e-5


def test_boundary_merge_pools_only_text_tokens(tiny_youtu: YoutuEmbedder) -> None:
    """A prefix ending in ':' and a text starting with '?' share the BPE token ':?'."""
    prefix, text = "Query:", "?why is the sky blue"
    tokenizer, model = tiny_youtu.backbone.tokenizer, tiny_youtu.backbone.model
    encoded = tokenizer(prefix + text, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert ":?" in tokens, tokens
    # The seed counts the prefix's own tokens ([BOS] Query :) and so drops ':?', which holds
    # the text's first character; the offsets rule pools from ':?' on and nothing before it.
    n_seed = len(tokenizer(prefix)["input_ids"])
    text_start = tokens.index(":?")
    assert n_seed == text_start + 1
    assert all(end <= len(prefix) for _, end in encoded["offset_mapping"][:text_start])
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([encoded["input_ids"]])).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden[text_start:].mean(dim=0), dim=-1).numpy()
    actual = tiny_youtu.encode(text, prefix=prefix)[0]
    assert np.abs(actual - expected).max() <= 1e-5
    seed = seed_encode(model, tokenizer, [text], prefix)[0]
    assert np.abs(actual - seed).max() > 1e-4


def test_a_prefix_with_trailing_space_keeps_the_first_text_token(
    tiny_youtu: YoutuEmbedder,
) -> None:
    """The seed's defect: "Query: " tokenizes to one more token alone than inside "Query: x"."""
    prefix = "Query: "
    vectors = tiny_youtu.encode(["x", "why"], prefix=prefix)
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_order_is_restored_whatever_the_batching(tiny_youtu_dir: str) -> None:
    one_by_one = YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=1)
    budgeted = YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=64, max_batch_tokens=64)
    texts = QUERIES + DOCUMENTS
    reference = np.stack([one_by_one.encode_documents(t)[0] for t in texts])
    assert np.abs(budgeted.encode_documents(texts) - reference).max() <= 1e-5


def test_presets_resolve_to_their_task_text(tiny_youtu_dir: str) -> None:
    assert len(CMTEB_INSTRUCTIONS) == 31
    du = YoutuEmbedder(
        tiny_youtu_dir,
        device="cpu",
        query_instruction="DuRetrieval",
        document_instruction="DuRetrieval",
    )
    assert du.query_prefix == (
        "Instruction: Given a Chinese search query, retrieve web passages that answer the "
        "question \nQuery:"
    )
    assert du.document_prefix == ""  # retrieval documents carry no instruction
    afqmc = YoutuEmbedder(tiny_youtu_dir, device="cpu", document_instruction="AFQMC")
    assert afqmc.document_prefix == format_prefix(CMTEB_INSTRUCTIONS["AFQMC"].task)
    free = YoutuEmbedder(tiny_youtu_dir, device="cpu", query_instruction="Find recipes")
    assert free.query_prefix == "Instruction: Find recipes \nQuery:"
    none = YoutuEmbedder(tiny_youtu_dir, device="cpu", query_instruction="")
    assert none.query_prefix == ""
    default = YoutuEmbedder(tiny_youtu_dir, device="cpu")
    assert not np.allclose(du.encode_queries("sky"), default.encode_queries("sky"))
    assert np.array_equal(du.encode_queries("sky"), du.encode("sky", prefix=du.query_prefix))
    assert DEFAULT_QUERY_TASK in default.query_prefix


def test_embedders_share_one_backbone_per_model_device_dtype(tiny_youtu_dir: str) -> None:
    first = YoutuEmbedder(tiny_youtu_dir, device="cpu", query_instruction="DuRetrieval")
    second = YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=7)
    bf16 = YoutuEmbedder(tiny_youtu_dir, device="cpu", dtype="bfloat16")
    assert first.backbone is second.backbone
    assert bf16.backbone is not first.backbone


def test_bfloat16_on_cpu_stays_close_to_float32(tiny_youtu_dir: str) -> None:
    fp32 = YoutuEmbedder(tiny_youtu_dir, device="cpu")
    bf16 = YoutuEmbedder(tiny_youtu_dir, device="cpu", dtype="bfloat16")
    assert bf16.backbone.dtype == torch.bfloat16
    a, b = fp32.encode_documents(DOCUMENTS), bf16.encode_documents(DOCUMENTS)
    assert b.dtype == np.float32
    assert (a * b).sum(axis=1).min() > 0.98


def test_no_profile_asks_for_remote_code(tiny_youtu: YoutuEmbedder) -> None:
    assert get_profile("tencent/Youtu-Embedding").trust_remote_code is False
    assert get_profile("someone/some-model").trust_remote_code is False
    assert tiny_youtu.profile.trust_remote_code is False


def test_truncation_is_reported_once_with_a_count(
    tiny_youtu_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    short = YoutuEmbedder(tiny_youtu_dir, device="cpu", max_length=16)
    assert short.max_length == 16
    with caplog.at_level(logging.WARNING, logger="youtu_rag.model.embedder"):
        vectors = short.encode_documents(["long text " * 50, "short", "another long one " * 30])
        short.encode_documents(["长文本。" * 40])  # said once per embedder, counted every time
    warnings = [r.getMessage() for r in caplog.records if r.name == "youtu_rag.model.embedder"]
    assert warnings == ["2 of 3 texts exceed 16 tokens and were truncated"]
    assert short.warning_counts() == {"truncated": 3}
    assert np.isfinite(vectors).all()


def test_out_of_memory_halves_the_batch_and_retries(
    tiny_youtu_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CUDA cannot run here, so the allocator's error is raised by a wrapper around forward."""
    embedder = YoutuEmbedder(tiny_youtu_dir, device="cpu", batch_size=8)
    expected = embedder.encode_documents(DOCUMENTS)
    model = embedder.backbone.model
    real_forward = model.forward
    sizes: list[int] = []

    def forward_fitting_two_rows(*args: object, **kwargs: torch.Tensor) -> object:
        sizes.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward_fitting_two_rows)
    assert np.abs(embedder.encode_documents(DOCUMENTS) - expected).max() <= 1e-5
    assert sizes == [5, 2, 2, 1]

    def forward_never_fitting(*args: object, **kwargs: torch.Tensor) -> object:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(model, "forward", forward_never_fitting)
    with pytest.raises(torch.OutOfMemoryError):
        embedder.encode_documents(DOCUMENTS)
