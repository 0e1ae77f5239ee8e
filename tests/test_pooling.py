"""The pooling primitives on hand-built tensors."""

from __future__ import annotations

import pytest
import torch

from youtu_rag.model.pooling import l2_normalize, masked_mean, pool, text_mask


def test_text_mask_drops_prefix_and_leading_special_keeps_trailing_special() -> None:
    # [BOS] "Query" ":" "foo" "bar" [EOS] [PAD]; prefix "Query:" is 6 characters.
    ends = torch.tensor([[0, 5, 6, 9, 12, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    assert text_mask(ends, attention, prefix_chars=6).tolist() == [[0, 0, 0, 1, 1, 1, 0]]


def test_text_mask_with_empty_prefix_drops_only_the_bos() -> None:
    ends = torch.tensor([[0, 3, 7, 0], [0, 2, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    assert text_mask(ends, attention, prefix_chars=0).tolist() == [[0, 1, 1, 1], [0, 1, 1, 0]]


def test_text_mask_keeps_a_token_merged_across_the_boundary() -> None:
    # "Query" ":?" "why": ":?" starts in the prefix and ends in the text.
    ends = torch.tensor([[0, 5, 7, 10]])
    attention = torch.ones_like(ends)
    assert text_mask(ends, attention, prefix_chars=6).tolist() == [[0, 0, 1, 1]]


def test_masked_mean_averages_only_masked_positions() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [5.0, 8.0], [100.0, 100.0]]])
    mask = torch.tensor([[0, 1, 1, 0]])
    assert masked_mean(hidden, mask).tolist() == [[4.0, 6.0]]


def test_masked_mean_of_an_empty_mask_is_zero_not_nan() -> None:
    hidden = torch.ones((1, 3, 4))
    result = masked_mean(hidden, torch.zeros((1, 3), dtype=torch.long))
    assert torch.equal(result, torch.zeros((1, 4)))


def test_masked_mean_computes_in_float32_for_bfloat16_input() -> None:
    hidden = torch.randn((2, 5, 8)).to(torch.bfloat16)
    assert masked_mean(hidden, torch.ones((2, 5))).dtype == torch.float32


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_finite() -> None:
    vectors = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    result = l2_normalize(vectors)
    assert torch.allclose(result[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(result[1], torch.zeros(2))


def test_first_and_last_token_read_the_first_and_last_kept_position() -> None:
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    # Row 0 keeps positions 1-2 (a prompt masked before, padding after); row 1 keeps 0-3.
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    assert pool(hidden, mask, "cls").tolist() == [hidden[0, 1].tolist(), hidden[1, 0].tolist()]
    assert pool(hidden, mask, "lasttoken").tolist() == [
        hidden[0, 2].tolist(),
        hidden[1, 3].tolist(),
    ]
    assert pool(hidden, mask, "mean").tolist() == [
        hidden[0, 1:3].mean(dim=0).tolist(),
        hidden[1].mean(dim=0).tolist(),
    ]


def test_pool_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown pooling mode 'max'"):
        pool(torch.zeros(1, 1, 2), torch.ones(1, 1), "max")  # type: ignore[arg-type]
