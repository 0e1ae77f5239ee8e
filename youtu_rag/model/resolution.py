"""One pass from a model string to everything the rest of youtu-rag needs to know about it.

A hub id or local directory is resolved once per process: its ``config.json`` and its
sentence-transformers files are read here and nowhere else, and the built-in profile is
completed from them, each rule remembering where it came from. Loading
(:func:`~youtu_rag.model.loading.load_backbone`), the embedder, the store's guard and the
collection fingerprint take the :class:`ResolvedModel` instead of reading or resolving again:
Chroma rebuilds an embedding function on every add or query of a reopened collection, and a
notebook may build many embedders over one model.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from youtu_rag.model.defaults import is_utu
from youtu_rag.model.profiles import (
    YOUTU_EMBEDDING,
    ModelProfile,
    from_sentence_transformers,
    get_profile,
    youtu_rules,
)
from youtu_rag.model.st_config import SentenceTransformersConfig, read_sentence_transformers_config

logger = logging.getLogger(__name__)

#: The backend of every model resolved here: loaded in this process.
LOCAL_BACKEND = "local"


@dataclass(frozen=True)
class ResolvedModel:
    """A model string resolved: its rules, its configuration and where its weights are.

    Built by :func:`resolve_model` only, once per process and model string.
    """

    #: The name a collection records (the canonical name of a known model).
    name: str
    #: How it is embedded, each rule with its origin (:meth:`ModelProfile.origin`).
    profile: ModelProfile
    #: The fields of the weights' ``config.json``, read as data (no checkpoint code runs).
    config: Mapping[str, Any]
    #: What its sentence-transformers files say; ``None`` when it has none.
    sentence_transformers: SentenceTransformersConfig | None
    backend: str = LOCAL_BACKEND

    @property
    def source(self) -> str:
        """Where the weights are: a hub id or a local directory (a checkpoint's transformer
        folder when its sentence-transformers pipeline keeps it in one)."""
        return self.profile.source

    @property
    def utu(self) -> bool:
        """Whether it is a Youtu-Embedding (``utu``) checkpoint, loaded natively."""
        return is_utu(dict(self.config))


class ModelNotFoundError(OSError):
    """A model string that names no model this process can read: no such folder, a folder
    without ``config.json``, or a hub id neither in the local cache nor downloadable. The same
    message from every entry point (Python, the CLI, the server)."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(
            f"cannot load model {model!r}: {reason}. To work offline, pass a local directory "
            "holding the model (config.json, weights, tokenizer)."
        )
        self.model = model
        self.reason = reason

    @classmethod
    def from_error(cls, model: str, error: BaseException) -> ModelNotFoundError:
        """The loader's error (transformers', huggingface_hub's) as its first line."""
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return cls(model, lines[0].rstrip(".") if lines else type(error).__name__)


def check_model_folder(model: str) -> None:
    """A model string that is a path (``/``, ``.``, ``~`` first) must be a model's folder:
    checked before transformers is even imported.

    Raises:
        ModelNotFoundError: no such directory, or no ``config.json`` in it.
    """
    if not model.startswith(("/", ".", "~")):
        return
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(model, "no such directory")
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(model, "the folder holds no config.json")


def read_config(source: str) -> dict[str, Any]:
    """``config.json`` of a hub id or local directory, read as data: no checkpoint code runs.

    Every other module gets these fields from :func:`resolve_model`, which calls this once.

    Args:
        source: hub id or local directory.

    Returns:
        The parsed config.

    Raises:
        ModelNotFoundError: there is no ``config.json``, or the hub cannot be reached for a
            checkpoint not in the local cache.
    """
    check_model_folder(source)
    from transformers.utils.hub import cached_file  # transformers loads slowly: only here

    try:
        path = cached_file(source, "config.json")
    except OSError as error:
        raise ModelNotFoundError.from_error(source, error) from error
    if path is None:
        raise ModelNotFoundError(source, "it has no config.json")
    with open(path, encoding="utf-8") as handle:
        config: dict[str, Any] = json.load(handle)
    return config


# Cached per model string; an error is not kept, so a model downloaded later resolves.
@functools.lru_cache(maxsize=64)
def resolve_model(model_name_or_path: str) -> ResolvedModel:
    """Resolve a model string once per process: read its files, complete its profile.

    A ``utu`` checkpoint (by its ``config.json``) gets the Youtu-Embedding rules under any
    name; then the sentence-transformers files, where present, set pooling, prompts, max length
    and normalisation as sentence-transformers would (see
    :func:`~youtu_rag.model.profiles.from_sentence_transformers`).

    Args:
        model_name_or_path: hub id or local directory.

    Returns:
        The resolved model, shared by every later call with the same string.

    Raises:
        OSError: the checkpoint (its ``config.json``) cannot be found.
        UnsupportedCheckpointError: its sentence-transformers pipeline cannot be reproduced.
    """
    profile = get_profile(model_name_or_path)
    config = read_config(profile.source)
    utu = is_utu(config)
    if utu and profile.name != YOUTU_EMBEDDING:
        profile = youtu_rules(profile)
    sentence_transformers = read_sentence_transformers_config(profile.source)
    if sentence_transformers is not None:
        root = profile.source
        profile = from_sentence_transformers(profile, sentence_transformers, utu)
        if profile.source != root:
            config = read_config(profile.source)  # the transformer folder's own config
    logger.debug("resolved %s: %s", model_name_or_path, profile)
    return ResolvedModel(
        name=profile.name,
        profile=profile,
        config=config,
        sentence_transformers=sentence_transformers,
    )


def resolve_profile(model_name_or_path: str) -> ModelProfile:
    """The full profile of a model: built-in rules completed by the checkpoint's own files.

    Args:
        model_name_or_path: hub id or local directory.

    Returns:
        The profile of :func:`resolve_model`, its ``origins`` naming the source of each rule.

    Raises:
        OSError: the checkpoint (its ``config.json``) cannot be found.
        UnsupportedCheckpointError: its sentence-transformers pipeline cannot be reproduced.
    """
    return resolve_model(model_name_or_path).profile
