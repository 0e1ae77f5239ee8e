"""Reranker: a cross-encoder's relevance score for each (query, document) pair.

A first stage (dense, lexical, hybrid) ranks a corpus by comparing separate vectors or terms; a
cross-encoder reads the query and a candidate together and scores that pair, which is more
precise and far costlier, so it reorders a few candidates. Any Hugging Face
sequence-classification checkpoint works (BERT- and XLM-R-shaped: a MiniLM cross-encoder,
``BAAI/bge-reranker-v2-m3``, which reads Chinese). Scores are those of sentence-transformers'
``CrossEncoder.predict`` on the same checkpoint: pairs tokenised together and cut longest first
at the model's limit, the checkpoint's activation (a ``torch.nn`` one named in its
``sentence_transformers`` config; else the sigmoid of a one-label logit, the logits as they are
for several labels). Nothing in the checkpoint decides what code runs: no remote code, and an
activation named outside ``torch`` is not imported (sentence-transformers falls back the same
way without ``trust_remote_code``).

Pairs are sorted by length and batched by count and by a padded-token budget, as the embedder
does; a batch that runs out of accelerator memory is halved and retried. One lock serialises
the tokenizer and the model, so every thread gets exactly its sequential result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from youtu_rag.model.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from youtu_rag.model.loading import resolve_device, resolve_dtype
from youtu_rag.model.notices import OnceWarnings
from youtu_rag.model.quiet import quiet_model_loading
from youtu_rag.model.resolution import read_config
from youtu_rag.model.texts import validate_texts

__all__ = ["Reranker", "check_top_n", "ranked"]

logger = logging.getLogger(__name__)

_UNBOUNDED = 1_000_000  # tokenizers without a limit say int(1e30)


class Reranker:
    """Cross-encoder scores and rankings; see the module notes."""

    def __init__(
        self,
        model: str,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        """Load ``model`` (a hub id or a local directory; no remote code).

        Args:
            model: the sequence-classification checkpoint.
            device: ``cuda``, ``mps`` or ``cpu`` (default: the best available).
            dtype: float32, float16 or bfloat16 (default: bf16 on CUDA, else fp32).
            batch_size: pairs per forward pass at most.
            max_length: tokens of a pair at most (default: the tokenizer's limit, else the
                model's position embeddings).
            max_batch_tokens: padded tokens per forward pass at most.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._model_name = model
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        read_config(model)  # a model that cannot be found: ModelNotFoundError, as everywhere
        with quiet_model_loading():
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=False)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model, dtype=resolve_dtype(dtype, self.device), trust_remote_code=False
            )
        self.model.to(self.device).eval()
        config = self.model.config
        limit = int(getattr(self.tokenizer, "model_max_length", _UNBOUNDED) or _UNBOUNDED)
        if limit >= _UNBOUNDED:
            limit = int(getattr(config, "max_position_embeddings", 512))
        self.max_length = max_length or limit
        self.num_labels = int(config.num_labels)
        self.activation = _activation(config, self.num_labels)
        self._lock = threading.Lock()
        self._notices = OnceWarnings(logger)

    @property
    def model_name(self) -> str:
        return self._model_name

    def __repr__(self) -> str:
        return (
            f"Reranker({self.model_name!r}, device={str(self.device)!r}, "
            f"max_length={self.max_length}, activation={type(self.activation).__name__})"
        )

    def warning_counts(self) -> dict[str, int]:
        """How often each warning happened, though each is logged once: ``"truncated"``."""
        return self._notices.counts()

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """The relevance score of each of ``documents`` for ``query``, in their order.

        Raises:
            TypeError: the query or a document is not a string (the message names its index).
            ValueError: the query or a document is empty.
        """
        query = validate_texts([query])[0]
        items = validate_texts(list(documents))
        if not items:
            return []
        with self._lock, torch.inference_mode():
            return self._score(query, items)

    def rank(
        self, query: str, documents: Sequence[str], top_n: int | None = None
    ) -> list[tuple[int, float]]:
        """(index into ``documents``, score) pairs, best first, the ``top_n`` best (all by
        default); ties keep the documents' order."""
        check_top_n(top_n)
        return ranked(self.score(query, documents), top_n)

    def _score(self, query: str, documents: list[str]) -> list[float]:
        encoded = self.tokenizer(
            [query] * len(documents),
            documents,
            truncation=True,
            max_length=self.max_length,
        )
        ids: list[list[int]] = encoded["input_ids"]
        # Only a pair cut to exactly the limit may have been longer: count those again.
        full = [index for index, row in enumerate(ids) if len(row) >= self.max_length]
        truncated = 0
        if full:
            whole = self.tokenizer(
                [query] * len(full), [documents[i] for i in full], verbose=False
            )["input_ids"]
            truncated = sum(1 for row in whole if len(row) > self.max_length)
        if truncated:
            self._notices.warn(
                "truncated",
                truncated,
                "%d of %d query-document pairs exceed %d tokens and were truncated",
                truncated,
                len(documents),
                self.max_length,
            )
        order = sorted(range(len(ids)), key=lambda index: len(ids[index]), reverse=True)
        scores = [0.0] * len(ids)
        cap = self.batch_size
        start = 0
        while start < len(order):
            width = len(ids[order[start]])
            rows = order[start : start + min(cap, max(1, self.max_batch_tokens // width))]
            batch = _padded(encoded, rows, width, self.tokenizer.pad_token_id or 0)
            try:
                logits = self.model(**{k: v.to(self.device) for k, v in batch.items()}).logits
            except torch.OutOfMemoryError:
                if len(rows) == 1:
                    raise
                cap = max(1, len(rows) // 2)
                self._notices.warn("out_of_memory", 1, "out of memory; retrying %d pairs", cap)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            values = self.activation(logits.float())
            values = values[:, 0] if self.num_labels == 1 else values.max(dim=1).values
            for row, value in zip(rows, values.tolist(), strict=True):
                scores[row] = float(value)
            start += len(rows)
        return scores


def check_top_n(top_n: int | None) -> None:
    """Refuse a ``top_n`` below 1 (before any scoring)."""
    if top_n is not None and top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")


def ranked(scores: Sequence[float], top_n: int | None = None) -> list[tuple[int, float]]:
    """(index, score) pairs, best first, the ``top_n`` best; ties keep the input order."""
    order = sorted(range(len(scores)), key=lambda index: -scores[index])
    return [(index, scores[index]) for index in order[:top_n]]


def _padded(encoded: Any, rows: list[int], width: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The rows' encodings right-padded to ``width``, as tensors (the tokenizer's own ``pad``
    is pure Python and costs more than a small model's forward pass)."""
    batch: dict[str, torch.Tensor] = {}
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        if key not in encoded:
            continue
        fill = pad_id if key == "input_ids" else 0
        tensor = torch.full((len(rows), width), fill, dtype=torch.long)
        for position, row in enumerate(rows):
            values = encoded[key][row]
            tensor[position, : len(values)] = torch.tensor(values, dtype=torch.long)
        batch[key] = tensor
    return batch


def _activation(config: Any, num_labels: int) -> torch.nn.Module:
    """The checkpoint's activation when it names one of ``torch.nn``'s, else sentence-
    transformers' default: sigmoid for one label, identity for several."""
    named = (getattr(config, "sentence_transformers", None) or {}).get("activation_fn") or getattr(
        config, "sbert_ce_default_activation_function", None
    )
    if isinstance(named, str) and named.startswith("torch.nn."):
        module_name, _, class_name = named.rpartition(".")
        import importlib

        found = getattr(importlib.import_module(module_name), class_name, None)
        if isinstance(found, type) and issubclass(found, torch.nn.Module):
            return found()
    elif named is not None:
        logger.warning("activation %r is not torch's: using the default", named)
    return torch.nn.Sigmoid() if num_labels == 1 else torch.nn.Identity()
