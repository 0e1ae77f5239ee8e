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
from typing import Any

from transformers.utils.hub import cached_file

from youtu_rag.model.profiles import (
    YOUTU_EMBEDDING,
    ModelProfile,
    from_sentence_transformers,
    get_profile,
    youtu_rules,
)
from youtu_rag.model.st_config import SentenceTransformersConfig, read_sentence_transformers_config
from youtu_rag.model.utu import is_utu

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


def read_config(source: str) -> dict[str, Any]:
    """``config.json`` of a hub id or local directory, read as data: no checkpoint code runs.

    Every other module gets these fields from :func:`resolve_model`, which calls this once.

    Args:
        source: hub id or local directory.

    Returns:
        The parsed config.

    Raises:
        OSError: there is no ``config.json``, or the hub cannot be reached for a checkpoint
            not in the local cache.
    """
    path = cached_file(source, "config.json")
    if path is None:
        raise OSError(f"{source} has no config.json")
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
