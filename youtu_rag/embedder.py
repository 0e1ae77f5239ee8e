"""YoutuEmbedder: texts in, L2-normalised float32 vectors out, in input order.

One readable loop, after sentence-transformers' ``encode``: tokenize once, sort by length, cut
batches by row count and by a padded-token budget, pool the text tokens, restore the order.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from youtu_rag.instructions import format_prefix, resolve_task
from youtu_rag.loading import Backbone, load_backbone, resolve_device, resolve_dtype
from youtu_rag.pooling import l2_normalize, masked_mean, text_mask
from youtu_rag.profiles import YOUTU_EMBEDDING, ModelProfile, Pooling, get_profile, override
from youtu_rag.quiet import quiet_model_loading
from youtu_rag.tokenization import encode_batch
from youtu_rag.utu import Attention

logger = logging.getLogger(__name__)

#: Padded tokens per forward pass: bounds activation memory whatever the batch size.
DEFAULT_MAX_BATCH_TOKENS = 16384


def validate_texts(texts: str | Iterable[str]) -> list[str]:
    """The texts as a list, or the error that names the first bad one by its index."""
    items = [texts] if isinstance(texts, str) else list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"text at index {index} is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"text at index {index} is empty or whitespace only")
    return items


@dataclass(frozen=True)
class TokenCounts:
    """Tokens per text as a forward pass sees them (prefix and special tokens included, after
    truncation), and which texts were cut: the unit of the batch budget and of a server's bill."""

    lengths: list[int]
    truncated: list[int]


def count_tokens(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], prefix: str, max_length: int
) -> TokenCounts:
    """Tokens of each ``prefix + text`` with special tokens, cut at ``max_length``, as
    :meth:`YoutuEmbedder.encode` tokenizes them (safe from any thread)."""
    encodings = encode_batch(tokenizer, [prefix + text for text in texts], max_length=max_length)
    return TokenCounts(
        lengths=[len(encoding.ids) for encoding in encodings],
        truncated=[i for i, encoding in enumerate(encodings) if encoding.overflowing],
    )


class YoutuEmbedder:
    """Instruction-masked mean-pooling embedder over a Hugging Face encoder or decoder.

    Queries are embedded as ``query_prefix + query`` and documents as ``document_prefix + doc``;
    the prefix steers the model but never enters the mean (for profiles with ``pooling="text"``).
    Embedders over the same (model, device, dtype) share one loaded backbone.

    Thread safety: ``encode`` (and the query/document variants) may be called from any number of
    threads, on one embedder or on several sharing a backbone, whatever their ``max_length``;
    each call returns exactly what it returns alone. Tokenization goes through a private copy of
    the tokenizer under a lock (:mod:`youtu_rag.tokenization`), never through the shared
    tokenizer's mutable truncation settings; forward passes are not serialised (a model in
    inference mode keeps no state between calls). Code that drives
    ``backbone.tokenizer`` itself does not disturb the embedder, but is not protected from
    other such code.
    """

    backend = "local"

    def __init__(
        self,
        model_name_or_path: str = YOUTU_EMBEDDING,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        query_instruction: str | None = None,
        document_instruction: str | None = None,
        trust_remote_code: bool | None = None,
        show_progress: bool = False,
        pooling: Pooling | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        attention: Attention | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.profile: ModelProfile = override(
            get_profile(model_name_or_path),
            max_length=max_length,
            trust_remote_code=trust_remote_code,
            pooling=pooling,
            attention=attention,
        )
        self.query_task = (
            self.profile.query_task
            if query_instruction is None
            else resolve_task(query_instruction, "query")
        )
        self.document_task = (
            self.profile.document_task
            if document_instruction is None
            else resolve_task(document_instruction, "document")
        )
        self.query_prefix = format_prefix(self.query_task, self.profile.prefix_template)
        self.document_prefix = format_prefix(self.document_task, self.profile.prefix_template)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.show_progress = show_progress
        resolved_device = resolve_device(device)
        with quiet_model_loading():
            self.backbone: Backbone = load_backbone(
                self.profile.source,
                resolved_device,
                resolve_dtype(dtype, resolved_device),
                self.profile.trust_remote_code,
                self.profile.attention,
            )
        config = self.backbone.model.config
        self.max_length: int = min(
            self.profile.max_length, getattr(config, "max_position_embeddings", 1 << 30)
        )
        self.dimension: int = int(config.hidden_size)
        # A decoder would otherwise fill a key/value cache that an embedding never reads.
        forward_parameters = inspect.signature(self.backbone.model.forward).parameters
        self._forward_options: dict[str, Any] = (
            {"use_cache": False} if "use_cache" in forward_parameters else {}
        )

    @property
    def model_name(self) -> str:
        return self.profile.name

    @property
    def pooling(self) -> Pooling:
        return self.profile.pooling

    @property
    def attention(self) -> Attention | None:
        """How a ``utu`` backbone attends; ``None`` for models that attend as they were built."""
        return self.backbone.attention

    def __repr__(self) -> str:
        return (
            f"YoutuEmbedder({self.model_name!r}, device={str(self.backbone.device)!r}, "
            f"dtype={str(self.backbone.dtype).removeprefix('torch.')!r}, "
            f"dimension={self.dimension}, max_length={self.max_length}"
            + (f", attention={self.attention!r})" if self.attention else ")")
        )

    def encode_queries(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed search queries with the query instruction."""
        return self.encode(texts, prefix=self.query_prefix)

    def encode_documents(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed documents (passages) with the document instruction, empty by default."""
        return self.encode(texts, prefix=self.document_prefix)

    def encode(self, texts: str | Sequence[str], prefix: str = "") -> np.ndarray:
        """Embed ``prefix + text`` for each text; the prefix is masked out of the mean.

        Returns an (n, dimension) float32 array of unit vectors in input order.
        """
        items = validate_texts(texts)
        output = np.empty((len(items), self.dimension), dtype=np.float32)
        if not items:
            return output
        encodings = encode_batch(
            self.backbone.tokenizer, [prefix + text for text in items], max_length=self.max_length
        )
        token_ids: list[list[int]] = [encoding.ids for encoding in encodings]
        packed = _Packed.from_lists(
            token_ids, [[end for _, end in encoding.offsets] for encoding in encodings]
        )
        truncated = sum(1 for encoding in encodings if encoding.overflowing)
        del encodings
        if truncated:
            logger.warning(
                "%d of %d texts exceed %d tokens and were truncated",
                truncated,
                len(items),
                self.max_length,
            )

        order = sorted(range(len(items)), key=lambda i: len(token_ids[i]), reverse=True)
        cap = self.batch_size
        start = 0
        with (
            torch.inference_mode(),
            tqdm(
                total=len(items), desc="Embedding", unit="text", disable=not self.show_progress
            ) as progress,
        ):
            while start < len(order):
                rows = self._next_batch(order, start, cap, token_ids)
                try:
                    vectors = self._embed_rows(rows, packed, len(prefix))
                except torch.OutOfMemoryError:
                    if len(rows) == 1:
                        raise
                    cap = max(1, len(rows) // 2)
                    logger.warning(
                        "out of memory at %d texts per batch; retrying %d", len(rows), cap
                    )
                    if self.backbone.device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                output[rows] = vectors
                start += len(rows)
                progress.update(len(rows))
        return output

    def token_counts(self, texts: str | Sequence[str], prefix: str = "") -> TokenCounts:
        """Tokens each ``prefix + text`` takes in a forward pass, as :meth:`encode` cuts them."""
        return count_tokens(self.backbone.tokenizer, validate_texts(texts), prefix, self.max_length)

    def rows_per_batch(self, width: int, cap: int | None = None) -> int:
        """How many rows one forward pass takes when its longest row has ``width`` tokens:
        ``batch_size`` (or ``cap``), and no more than the padded-token budget allows."""
        rows_by_budget = max(1, self.max_batch_tokens // max(width, 1))
        return min(self.batch_size if cap is None else cap, rows_by_budget)

    def _next_batch(
        self, order: list[int], start: int, cap: int, token_ids: list[list[int]]
    ) -> list[int]:
        """The next rows in length order, capped by count and by padded tokens.

        ``order`` runs longest first, so the first row's length is the batch's padded width.
        """
        width = len(token_ids[order[start]])
        return order[start : start + self.rows_per_batch(width, cap)]

    def _embed_rows(self, rows: list[int], packed: _Packed, prefix_chars: int) -> np.ndarray:
        pad_id = self.backbone.tokenizer.pad_token_id
        ids, ends, attention = packed.batch(rows, 0 if pad_id is None else int(pad_id))
        if self.profile.pooling == "text":
            pooled = text_mask(ends, attention, prefix_chars)
        else:
            pooled = attention
        empty = (pooled.sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"text at index {rows[empty[0]]} has no tokens left to pool after the "
                f"{prefix_chars}-character prefix (max_length {self.max_length})"
            )
        device = self.backbone.device
        inputs: dict[str, Any] = {
            "input_ids": ids.to(device),
            "attention_mask": attention.to(device),
            **self._forward_options,
        }
        hidden = self.backbone.model(**inputs).last_hidden_state
        vectors = l2_normalize(masked_mean(hidden, pooled.to(device)))
        result: np.ndarray = vectors.cpu().numpy()
        return result


class _Packed:
    """Every text's token ids and offset ends in two flat arrays, so a padded batch is built
    with one gather instead of a Python loop over rows."""

    def __init__(self, ids: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> None:
        self.ids = ids
        self.ends = ends
        self.lengths = lengths
        self.starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)

    @classmethod
    def from_lists(cls, token_ids: list[list[int]], offset_ends: list[list[int]]) -> _Packed:
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        total = int(lengths.sum())
        ids = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int64, count=total)
        ends = np.fromiter(itertools.chain.from_iterable(offset_ends), dtype=np.int64, count=total)
        return cls(ids, ends, lengths)

    def batch(
        self, rows: list[int], pad_id: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``(input_ids, offset_ends, attention_mask)`` of ``rows``, width the
        longest row."""
        lengths = self.lengths[rows]
        width = max(int(lengths.max()), 1)
        columns = np.arange(width)
        attended = columns[None, :] < lengths[:, None]
        gather = self.starts[rows][:, None] + np.minimum(columns[None, :], lengths[:, None] - 1)
        gather = np.maximum(gather, 0)
        ids = np.where(attended, self.ids[gather] if self.ids.size else pad_id, pad_id)
        ends = np.where(attended, self.ends[gather] if self.ends.size else 0, 0)
        return (
            torch.from_numpy(ids),
            torch.from_numpy(ends),
            torch.from_numpy(attended.astype(np.int64)),
        )
