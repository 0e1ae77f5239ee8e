"""``SentenceTransformer``'s face over :class:`~youtu_rag.YoutuEmbedder`, so that code written for
sentence-transformers moves over by its import line alone.

``from youtu_rag import SentenceTransformer`` in place of ``from sentence_transformers import
SentenceTransformer``: the constructor, ``encode`` with its common keywords, ``encode_query`` /
``encode_document``, ``prompts`` / ``prompt_name``, ``similarity`` and
``get_sentence_embedding_dimension`` mean what they mean there, and the vectors are equal (the
test suite checks it against sentence-transformers itself). What differs is underneath:
Youtu-Embedding loads natively with its instruction masked out of the mean, and vectors are
always unit length. An argument with no counterpart is refused, naming the replacement.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from youtu_rag.model.embedder import YoutuEmbedder
from youtu_rag.model.profiles import YOUTU_EMBEDDING
from youtu_rag.model.st_config import DOCUMENT_PROMPT_NAMES

#: sentence-transformers arguments with no counterpart here, and what to do instead.
_REFUSED = {
    "truncate_dim": "vectors keep the model's full dimension; slice and renormalise them",
    "cache_folder": "set HF_HOME, or pass a local directory as the model",
    "revision": "pass a local directory holding that revision",
    "token": "log in with `hf auth login`, or set HF_TOKEN",
    "modules": "the core pools as the checkpoint's files say; pass pooling= to YoutuEmbedder",
    "tokenizer_kwargs": "the tokenizer is the model's own",
    "config_kwargs": "the model's config.json applies",
    "output_value": "only sentence embeddings are returned",
    "precision": "vectors are float32",
    "chunk_size": "pass texts in the chunks you want",
    "pool": "one process embeds; share a model with `youtu-rag serve` and HttpEmbedder",
}


class SentenceTransformer:
    """A sentence-transformers ``SentenceTransformer`` made of the youtu-rag core.

    Example:
        .. code-block:: python

            from youtu_rag import SentenceTransformer

            model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
            embeddings = model.encode(["The weather is lovely today.", "It's so sunny!"])
            print(model.similarity(embeddings, embeddings))
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        backend: str = "torch",
        **unsupported: Any,
    ) -> None:
        """Load the model as sentence-transformers would name it.

        Args:
            model_name_or_path: hub id or local directory (default: Youtu-Embedding).
            device: ``cuda``, ``mps`` or ``cpu``; None picks the best available.
            prompts: named prompts, added to the checkpoint's own (``query``, ``document``).
            default_prompt_name: the prompt ``encode`` uses when given none.
            similarity_fn_name: ``cosine`` or ``dot`` (the same on unit vectors).
            trust_remote_code: run the checkpoint's own code (never needed for Youtu-Embedding).
            local_files_only: accepted; the hub is asked only for what is not cached.
            model_kwargs: ``torch_dtype`` / ``dtype`` (the others have no counterpart).
            backend: ``torch`` only.
            **unsupported: refused, each with its replacement.

        Raises:
            TypeError: an argument has no counterpart here (the message names the replacement).
            ValueError: an unknown similarity, a backend other than torch, or a default prompt
                that is not among the prompts.
        """
        _refuse(unsupported, "SentenceTransformer()")
        if backend != "torch":
            raise ValueError(f"backend={backend!r}: the core runs on torch only")
        if similarity_fn_name not in (None, "cosine", "dot"):
            raise ValueError(
                f"similarity_fn_name={similarity_fn_name!r}: vectors are unit length, so cosine "
                "and dot are what this offers"
            )
        options = dict(model_kwargs or {})
        dtype = options.pop("torch_dtype", options.pop("dtype", None))
        if options:
            raise TypeError(
                f"model_kwargs {', '.join(sorted(options))} have no counterpart here: "
                "pass YoutuEmbedder's own options (device, dtype, max_length) instead"
            )
        self._embedder = YoutuEmbedder(
            model_name_or_path or YOUTU_EMBEDDING,
            device=device,
            dtype=None if dtype is None else str(dtype).removeprefix("torch."),
            trust_remote_code=trust_remote_code or None,
        )
        del local_files_only  # the loader already reads the local cache first
        self.prompts: dict[str, str] = {
            name: prefix
            for name, prefix in (
                ("query", self._embedder.query_prefix),
                ("document", self._embedder.document_prefix),
            )
            if prefix
        }
        self.prompts.update(prompts or {})
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(
                f"default_prompt_name {default_prompt_name!r} is not among the prompts "
                f"{sorted(self.prompts)}"
            )
        self.default_prompt_name = default_prompt_name
        self.similarity_fn_name = similarity_fn_name or "cosine"
        self._siblings: dict[tuple[int, bool], YoutuEmbedder] = {}
        self._siblings_lock = threading.Lock()

    @property
    def embedder(self) -> YoutuEmbedder:
        """The core embedder underneath."""
        return self._embedder

    @property
    def device(self) -> torch.device:
        return self._embedder.backbone.device

    @property
    def tokenizer(self) -> Any:
        return self._embedder.backbone.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self._embedder.max_length

    def get_sentence_embedding_dimension(self) -> int:
        return self._embedder.dimension

    def __repr__(self) -> str:
        return f"SentenceTransformer({self._embedder!r})"

    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        **unsupported: Any,
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
        """Embed ``sentences`` as ``SentenceTransformer.encode`` does.

        ``prompt_name`` picks a named prompt, ``prompt`` gives one verbatim (it wins); with
        neither, the default prompt if one was named, else none. Vectors are unit length
        whatever ``normalize_embeddings`` says. A single string gives one vector (1-D), a list
        a matrix.

        Raises:
            TypeError: an argument has no counterpart here.
            ValueError: an unknown prompt name, a device other than the model's, or a bad text.
        """
        _refuse(unsupported, "encode()")
        del normalize_embeddings  # always unit length
        if device is not None and torch.device(device).type != self.device.type:
            raise ValueError(f"the model is on {self.device}; load it with device={device!r}")
        prefix = self._prompt(prompt_name, prompt)
        embedder = self._sibling(batch_size, bool(show_progress_bar))
        vectors = embedder.encode([sentences] if isinstance(sentences, str) else sentences, prefix)
        single = isinstance(sentences, str)
        if convert_to_tensor:
            tensor = torch.from_numpy(vectors)
            return tensor[0] if single else tensor
        if not convert_to_numpy:
            return [torch.from_numpy(row) for row in vectors]
        return vectors[0] if single else vectors

    def encode_query(
        self, sentences: str | Sequence[str], **options: Any
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
        """``encode`` with the ``query`` prompt (when the model has one)."""
        if "query" in self.prompts and "prompt" not in options:
            options.setdefault("prompt_name", "query")
        return self.encode(sentences, **options)

    def encode_document(
        self, sentences: str | Sequence[str], **options: Any
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor]:
        """``encode`` with the document prompt (when the model has one)."""
        name = next((n for n in DOCUMENT_PROMPT_NAMES if n in self.prompts), None)
        if name is not None and "prompt" not in options:
            options.setdefault("prompt_name", name)
        return self.encode(sentences, **options)

    def similarity(self, first: Any, second: Any) -> torch.Tensor:
        """The similarity matrix of two sets of vectors (cosine, as sentence-transformers'
        default; dot is the same on unit vectors)."""
        a, b = _as_matrix(first), _as_matrix(second)
        if self.similarity_fn_name == "cosine":
            a = torch.nn.functional.normalize(a, dim=1)
            b = torch.nn.functional.normalize(b, dim=1)
        return a @ b.T

    def _prompt(self, name: str | None, verbatim: str | None) -> str:
        if verbatim is not None:
            return verbatim
        name = name if name is not None else self.default_prompt_name
        if name is None:
            return ""
        if name not in self.prompts:
            raise ValueError(
                f"prompt_name {name!r} is not among the prompts {sorted(self.prompts)}"
            )
        return self.prompts[name]

    def _sibling(self, batch_size: int, progress: bool) -> YoutuEmbedder:
        """The embedder with this batch size and progress bar: the same loaded model."""
        if (batch_size, progress) == (self._embedder.batch_size, self._embedder.show_progress):
            return self._embedder
        with self._siblings_lock:
            key = (batch_size, progress)
            if key not in self._siblings:
                arguments = {
                    **self._embedder.arguments,
                    "batch_size": batch_size,
                    "show_progress": progress,
                }
                self._siblings[key] = YoutuEmbedder(**arguments)
            return self._siblings[key]


def _as_matrix(vectors: Any) -> torch.Tensor:
    tensor = vectors if isinstance(vectors, torch.Tensor) else torch.as_tensor(np.asarray(vectors))
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def _refuse(arguments: dict[str, Any], where: str) -> None:
    if not arguments:
        return
    reasons = [
        f"{name} ({_REFUSED.get(name, 'not a sentence-transformers argument')})"
        for name in sorted(arguments)
    ]
    raise TypeError(f"{where} does not take {'; '.join(reasons)}")
