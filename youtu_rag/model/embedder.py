"""YoutuEmbedder: texts in, L2-normalised float32 vectors out, in input order.

One readable loop, after sentence-transformers' ``encode``: tokenize once, sort by length, cut
batches by row count and by a padded-token budget, pool the text tokens, restore the order.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from youtu_rag.model.defaults import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from youtu_rag.model.defaults import DEFAULT_MAX_BATCH_TOKENS as DEFAULT_MAX_BATCH_TOKENS
from youtu_rag.model.instructions import Side, format_prefix, resolve_task
from youtu_rag.model.loading import Backbone, load_backbone, resolve_device, resolve_dtype
from youtu_rag.model.notices import OnceWarnings
from youtu_rag.model.pooling import PoolingMode, l2_normalize, pool, text_mask
from youtu_rag.model.profiles import YOUTU_EMBEDDING, ModelProfile, Pooling, override
from youtu_rag.model.quiet import quiet_model_loading
from youtu_rag.model.resolution import ResolvedModel, resolve_model
from youtu_rag.model.texts import validate_texts as validate_texts
from youtu_rag.model.tokenization import UnknownTokens, encode_batch, unknown_tokens
from youtu_rag.model.utu import Attention

logger = logging.getLogger(__name__)

#: Share of a call's tokens mapped to the unknown token above which the embedder warns (once):
#: the model cannot read this script, and its vectors for it are noise. The one place this is
#: said, so the CLI, the server and the adapters say it alike.
UNKNOWN_TOKEN_WARNING = 0.10


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
    """Instruction-masked pooling embedder over a Hugging Face encoder or decoder.

    Queries are embedded as ``query_prefix + query`` and documents as ``document_prefix + doc``;
    the prefix steers the model, and whether it enters the pooling is the profile's rule
    (never, for Youtu-Embedding). Embedders over the same (model, device, dtype) share one
    loaded backbone; a copy or an unpickled embedder is rebuilt from its arguments and shares it
    too, instead of carrying the weights.

    Thread safety: ``encode`` (and the query/document variants) may be called from any number of
    threads, on one embedder or on several sharing a backbone, whatever their ``max_length``;
    each call returns exactly what it returns alone. Tokenization goes through a private copy of
    the tokenizer under a lock (:mod:`youtu_rag.model.tokenization`), never through the shared
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
        batch_size: int = DEFAULT_BATCH_SIZE,
        query_instruction: str | None = None,
        document_instruction: str | None = None,
        trust_remote_code: bool | None = None,
        show_progress: bool = False,
        pooling: Pooling | None = None,
        pooling_mode: PoolingMode | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        attention: Attention | None = None,
    ) -> None:
        """Resolve the model's rules and load (or reuse) its backbone.

        Args:
            model_name_or_path: hub id or local directory. The rules come from its built-in
                profile and its own sentence-transformers files; the arguments below override
                them (``None`` keeps them).
            device: ``cuda``, ``mps`` or ``cpu``; ``None`` picks the best available.
            dtype: ``float32``, ``bfloat16`` or ``float16``; ``None`` is bfloat16 on CUDA, else
                float32.
            max_length: tokens per text, prefix included.
            batch_size: texts per forward pass (also capped by ``max_batch_tokens``).
            query_instruction: task text or C-MTEB task name for queries; ``""`` for none.
            document_instruction: the same for documents.
            trust_remote_code: run the checkpoint's own modelling code.
            show_progress: show a progress bar while encoding.
            pooling: which tokens are pooled: ``"text"``, ``"all"`` or ``"exclude_prompt"``
                (see :data:`~youtu_rag.model.profiles.Pooling`).
            pooling_mode: how they are reduced: ``"mean"``, ``"cls"`` or ``"lasttoken"``.
            max_batch_tokens: padded tokens per forward pass, bounding activation memory.
            attention: ``"bidirectional"`` or ``"causal"``, for ``utu`` checkpoints only.

        Raises:
            ValueError: for a batch size or token budget below 1, an unknown dtype, or an
                ``attention`` given for a model that is not a ``utu`` checkpoint.
            OSError: the model cannot be found (offline with no local copy, a wrong path).
            UnsupportedCheckpointError: its sentence-transformers pipeline cannot be reproduced.
        """
        if batch_size < 1 or max_batch_tokens < 1:
            raise ValueError(
                f"batch_size and max_batch_tokens must be at least 1, got {batch_size} and "
                f"{max_batch_tokens}"
            )
        # Every keyword as given (not as resolved), to rebuild an equal embedder elsewhere.
        self.arguments: dict[str, Any] = {
            name: value for name, value in locals().items() if name in _ARGUMENTS
        }
        #: The model string resolved once per process: rules, config and weights' location.
        self.resolved: ResolvedModel = resolve_model(model_name_or_path)
        self.profile: ModelProfile = override(
            self.resolved.profile,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
            pooling=pooling,
            pooling_mode=pooling_mode,
            attention=attention,
            query_task=_task(query_instruction, "query"),
            document_task=_task(document_instruction, "document"),
        )
        self.query_task = self.profile.query_task
        self.document_task = self.profile.document_task
        self.query_prefix = format_prefix(self.query_task, self.profile.prefix_template)
        self.document_prefix = format_prefix(self.document_task, self.profile.prefix_template)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self._notices = OnceWarnings(logger)
        self.show_progress = show_progress
        resolved_device = resolve_device(device)
        with quiet_model_loading():
            self.backbone: Backbone = load_backbone(
                self.resolved,
                resolved_device,
                resolve_dtype(dtype, resolved_device),
                self.profile.trust_remote_code,
                self.profile.attention,
            )
        config = self.backbone.model.config
        wanted = self.profile.max_length or int(self.backbone.tokenizer.model_max_length)
        self.max_length: int = min(wanted, getattr(config, "max_position_embeddings", 1 << 30))
        self.dimension: int = int(config.hidden_size)
        # A decoder would otherwise fill a key/value cache that an embedding never reads.
        self._unknown = UnknownTokens()
        self._unknown_lock = threading.Lock()
        forward_parameters = inspect.signature(self.backbone.model.forward).parameters
        self._forward_options: dict[str, Any] = (
            {"use_cache": False} if "use_cache" in forward_parameters else {}
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled, deep-copied or copied as its arguments: the copy loads nothing new while the
        # backbone is in this process's cache, and a pickle never carries the weights.
        return (_build, (type(self), self.arguments))

    @property
    def model_name(self) -> str:
        """The resolved model's name: what the collection fingerprint records."""
        return self.resolved.name

    @property
    def pooling(self) -> Pooling:
        return self.profile.pooling

    @property
    def pooling_mode(self) -> PoolingMode:
        return self.profile.pooling_mode

    @property
    def attention(self) -> Attention | None:
        """How a ``utu`` backbone attends; ``None`` for models that attend as they were built."""
        return self.backbone.attention

    def info(self) -> dict[str, Any]:
        """What this embedder does and why: each rule with its value and where it came from.

        Returns:
            JSON-ready: ``model``, ``source``, ``device``, ``dtype``, ``dimension`` and
            ``rules``, a mapping of rule name to ``{"value": ..., "from": ...}``.
        """
        profile = self.profile
        attention_origin = (
            profile.origin("attention")
            if profile.attention
            else "utu default (the published model attends bidirectionally)"
        )
        rules: dict[str, tuple[Any, str]] = {
            "max_length": (
                self.max_length,
                profile.origin("max_length")
                + (f", capped by the model's {self.max_length} positions" if self._capped else ""),
            ),
            "pooling": (profile.pooling, profile.origin("pooling")),
            "pooling_mode": (profile.pooling_mode, profile.origin("pooling_mode")),
            "query_prefix": (self.query_prefix, profile.origin("query_task")),
            "document_prefix": (self.document_prefix, profile.origin("document_task")),
            "normalize": (True, _normalize_origin(profile)),
        }
        if self.attention is not None:
            rules["attention"] = (self.attention, attention_origin)
        return {
            "model": self.model_name,
            "source": profile.source,
            "device": str(self.backbone.device),
            "dtype": str(self.backbone.dtype).removeprefix("torch."),
            "dimension": self.dimension,
            "rules": {name: {"value": value, "from": of} for name, (value, of) in rules.items()},
        }

    @property
    def _capped(self) -> bool:
        wanted = self.profile.max_length or int(self.backbone.tokenizer.model_max_length)
        return self.max_length < wanted

    def __repr__(self) -> str:
        info = self.info()
        rules = ", ".join(
            f"{name}={rule['value']!r} [{rule['from']}]" for name, rule in info["rules"].items()
        )
        return (
            f"YoutuEmbedder({self.model_name!r}, device={info['device']!r}, "
            f"dtype={info['dtype']!r}, dimension={self.dimension}, {rules})"
        )

    def encode_queries(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed search queries with the query instruction.

        Args:
            texts: one query or a sequence of them.

        Returns:
            An (n, dimension) float32 array of unit vectors, in input order.

        Raises:
            TypeError: a text is not a string (the message names its index).
            ValueError: a text is empty, or has no token left once the prefix is masked.
        """
        return self.encode(texts, prefix=self.query_prefix)

    def encode_documents(self, texts: str | Sequence[str]) -> np.ndarray:
        """:meth:`encode_queries` for documents (passages): the document instruction, empty by
        default, instead of the query instruction."""
        return self.encode(texts, prefix=self.document_prefix)

    def encode(self, texts: str | Sequence[str], prefix: str = "") -> np.ndarray:
        """Embed ``prefix + text`` for each text, pooled by the profile's rules.

        Texts longer than ``max_length`` tokens are truncated, with one warning per embedder
        (:meth:`warning_counts` counts them all).

        Args:
            texts: one text or a sequence of them.
            prefix: prepended verbatim; whether its tokens are pooled is the profile's
                ``pooling`` rule (never, for ``"text"``).

        Returns:
            An (n, dimension) float32 array of unit vectors, in input order.

        Raises:
            TypeError: a text is not a string (the message names its index).
            ValueError: a text is empty, or has no token left to pool.
            torch.OutOfMemoryError: even a batch of one text does not fit.
        """
        items = validate_texts(texts)
        output = np.empty((len(items), self.dimension), dtype=np.float32)
        if not items:
            return output
        encodings = encode_batch(
            self.backbone.tokenizer, [prefix + text for text in items], max_length=self.max_length
        )
        seen = unknown_tokens(self.backbone.tokenizer, encodings)
        with self._unknown_lock:
            self._unknown += seen
        if seen.fraction > UNKNOWN_TOKEN_WARNING:
            self._notices.warn(
                "unknown tokens",
                seen.unknown,
                "%s could not read %.0f%% of the text it was given (%d of %d tokens became its "
                "unknown token): its results for this text are noise. Use a model that reads "
                "this language, e.g. tencent/Youtu-Embedding for Chinese.",
                self.model_name,
                100 * seen.fraction,
                seen.unknown,
                seen.total,
            )
        token_ids: list[list[int]] = [encoding.ids for encoding in encodings]
        packed = _Packed.from_lists(
            token_ids, [[end for _, end in encoding.offsets] for encoding in encodings]
        )
        truncated = sum(1 for encoding in encodings if encoding.overflowing)
        del encodings
        if truncated:
            self._notices.warn(
                "truncated",
                truncated,
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
                    self._notices.warn(
                        "out_of_memory",
                        1,
                        "out of memory at %d texts per batch; retrying %d",
                        len(rows),
                        cap,
                    )
                    if self.backbone.device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                output[rows] = vectors
                start += len(rows)
                progress.update(len(rows))
        return output

    def unknown_tokens(self) -> UnknownTokens:
        """Tokens of every text this embedder has encoded so far that its tokenizer mapped to
        the unknown token: how much of the text the model could not read (the instruction prefix
        counts as text, special tokens do not; see :class:`UnknownTokens`)."""
        with self._unknown_lock:
            return self._unknown

    def warning_counts(self) -> dict[str, int]:
        """How often each warning happened in this embedder, though each is logged only once:
        ``"truncated"`` (texts cut at ``max_length``), ``"out_of_memory"`` (batches halved)."""
        return self._notices.counts()

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
        pooling = self.profile.pooling
        if pooling == "all" or (pooling == "exclude_prompt" and not prefix_chars):
            pooled = attention
        else:
            pooled = text_mask(ends, attention, prefix_chars)
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
        vectors = l2_normalize(pool(hidden, pooled.to(device), self.profile.pooling_mode))
        result: np.ndarray = vectors.cpu().numpy()
        return result


#: The constructor's keywords, kept by each embedder to rebuild it.
_ARGUMENTS = frozenset(inspect.signature(YoutuEmbedder.__init__).parameters) - {"self"}


def _task(instruction: str | None, side: Side) -> str | None:
    return None if instruction is None else resolve_task(instruction, side)


def _build(cls: type[YoutuEmbedder], arguments: dict[str, Any]) -> YoutuEmbedder:
    return cls(**arguments)


def _normalize_origin(profile: ModelProfile) -> str:
    if profile.normalized is False:
        return (
            f"always; the checkpoint has no Normalize module ({profile.origin('normalized')}), "
            "so sentence-transformers would return raw vectors with the same cosine similarities"
        )
    if profile.normalized:
        return f"always; the checkpoint agrees ({profile.origin('normalized')})"
    return "always"


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
