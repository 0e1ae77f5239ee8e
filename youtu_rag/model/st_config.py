"""A checkpoint's own sentence-transformers configuration, read as data.

Most embedding checkpoints (MiniLM, bge, e5, gte, and the published Youtu-Embedding) say how they
embed in four small JSON files: ``modules.json`` (the pipeline), the pooling module's
``config.json`` (``pooling_mode``, ``include_prompt``), ``config_sentence_transformers.json``
(named prompts, similarity) and ``sentence_bert_config.json`` (``max_seq_length``). They are read
here as sentence-transformers 6 reads them, and never imported: a module type is only compared
with the names of the three modules the core reproduces exactly (transformer, pooling,
normalisation). Anything else is refused by name rather than embedded differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from youtu_rag.model.defaults import POOLING_MODES, PoolingMode

MODULES_FILE = "modules.json"
POOLING_FILE = "config.json"
MODEL_FILE = "config_sentence_transformers.json"
TRANSFORMER_FILE = "sentence_bert_config.json"

#: The pooling module's pre-v5 boolean keys, in sentence-transformers' order of precedence.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
#: Prompt names ``encode_document`` would look for, in order; see :attr:`document_prompt`.
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


class UnsupportedCheckpointError(ValueError):
    """The checkpoint's sentence-transformers pipeline does something the core cannot repeat
    exactly; embedding it anyway would give other vectors than sentence-transformers."""


@dataclass(frozen=True)
class SentenceTransformersConfig:
    """What a checkpoint's sentence-transformers files say about embedding it."""

    pooling_mode: PoolingMode
    #: ``False``: the prompt's tokens (and the special tokens before them) are left out of the
    #: pooling whenever a prompt is given.
    include_prompt: bool
    pooling_file: str
    query_prompt: str
    document_prompt: str
    #: Which named prompt :attr:`document_prompt` came from (``None``: there is none).
    document_prompt_name: str | None
    #: ``None``: the file sets none, so the tokenizer's ``model_max_length`` applies.
    max_seq_length: int | None
    #: Whether a ``Normalize`` module follows the pooling.
    normalize: bool
    similarity: str | None
    #: The transformer module's folder inside the checkpoint (``""``: the root).
    transformer_path: str


def read_json(source: str, filename: str, subfolder: str = "") -> Any:
    """A JSON file of a hub id or local directory, parsed as data.

    Args:
        source: hub id or local directory.
        filename: the file's name.
        subfolder: its folder inside the checkpoint.

    Returns:
        The parsed JSON, or ``None`` when the checkpoint has no such file.

    Raises:
        OSError: the hub cannot be reached for a checkpoint not in the local cache.
        json.JSONDecodeError: the file is not JSON.
    """
    from transformers.utils.hub import cached_file  # transformers loads slowly: only here

    path = cached_file(
        source, filename, subfolder=subfolder, _raise_exceptions_for_missing_entries=False
    )
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_sentence_transformers_config(source: str) -> SentenceTransformersConfig | None:
    """The sentence-transformers rules of the checkpoint at ``source``.

    Args:
        source: hub id or local directory.

    Returns:
        The rules, or ``None`` when the checkpoint has no ``modules.json``.

    Raises:
        UnsupportedCheckpointError: the pipeline has modules, pooling modes or settings that the
            core does not reproduce (a ``Dense`` layer, max pooling, lower-casing, ...).
    """
    modules = read_json(source, MODULES_FILE)
    if modules is None:
        return None
    transformer, pooling, normalize = _pipeline(source, modules)
    mode, include_prompt = _pooling(source, read_json(source, POOLING_FILE, pooling) or {})
    model: dict[str, Any] = read_json(source, MODEL_FILE) or {}
    if model.get("model_type", "SentenceTransformer") != "SentenceTransformer":
        raise UnsupportedCheckpointError(
            f"{source} is a sentence-transformers {model['model_type']}, not an embedding model"
        )
    prompts = {name: text for name, text in (model.get("prompts") or {}).items() if text}
    document_name = next((name for name in DOCUMENT_PROMPT_NAMES if name in prompts), None)
    return SentenceTransformersConfig(
        pooling_mode=mode,
        include_prompt=include_prompt,
        pooling_file=f"{pooling}/{POOLING_FILE}",
        query_prompt=prompts.get("query", ""),
        document_prompt=prompts.get(document_name, "") if document_name else "",
        document_prompt_name=document_name,
        max_seq_length=_max_seq_length(source, transformer),
        normalize=normalize,
        similarity=model.get("similarity_fn_name"),
        transformer_path=transformer,
    )


def _module_kind(module_type: str) -> str | None:
    """``"Transformer"``, ``"Pooling"`` or ``"Normalize"`` for sentence-transformers' own
    classes of those names, under any of their import paths; ``None`` for anything else."""
    package, _, name = module_type.rpartition(".")
    if package.split(".")[0] != "sentence_transformers":
        return None
    return name if name in ("Transformer", "Pooling", "Normalize") else None


def _pipeline(source: str, modules: list[dict[str, Any]]) -> tuple[str, str, bool]:
    """The transformer's and the pooling module's folders, and whether a ``Normalize`` ends
    the pipeline, refusing any other pipeline."""
    kinds = [_module_kind(str(module.get("type", ""))) for module in modules]
    for module, kind in zip(modules, kinds, strict=True):
        if kind is None:
            raise UnsupportedCheckpointError(
                f"{source}: module {module.get('name')!r} of type {module.get('type')!r} is not "
                "supported; youtu-rag reproduces a Transformer, a Pooling and an optional "
                "Normalize module, so its vectors would differ from sentence-transformers'"
            )
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedCheckpointError(
            f"{source}: modules.json runs {kinds}; youtu-rag reproduces Transformer, Pooling "
            "and an optional Normalize, in that order"
        )
    return str(modules[0].get("path", "")), str(modules[1].get("path", "")), len(kinds) == 3


def _pooling(source: str, config: dict[str, Any]) -> tuple[PoolingMode, bool]:
    """``pooling_mode`` and ``include_prompt``, converting the legacy boolean keys as
    sentence-transformers does (none set means mean)."""
    mode: Any = config.get("pooling_mode")
    if mode is None:
        active = [name for key, name in _LEGACY_POOLING_KEYS.items() if config.get(key)]
        mode = active or "mean"
    if isinstance(mode, list | tuple):
        mode = mode[0] if len(mode) == 1 else list(mode)
    if mode not in POOLING_MODES:
        raise UnsupportedCheckpointError(
            f"{source}: pooling mode {mode!r} is not supported; youtu-rag pools with one of "
            f"{', '.join(POOLING_MODES)}"
        )
    return mode, bool(config.get("include_prompt", True))


def _max_seq_length(source: str, transformer: str) -> int | None:
    """``max_seq_length`` of the transformer module, refusing settings that change the text
    or the states the pooling reads."""
    config: dict[str, Any] = read_json(source, TRANSFORMER_FILE, transformer) or {}
    if config.get("do_lower_case"):
        raise UnsupportedCheckpointError(
            f"{source}: do_lower_case is not supported; lower-case the texts yourself"
        )
    task = config.get("transformer_task", "feature-extraction")
    output = (config.get("modality_config") or {}).get("text", {}).get("method_output_name")
    if task != "feature-extraction" or output not in (None, "last_hidden_state"):
        raise UnsupportedCheckpointError(
            f"{source}: transformer task {task!r} with output {output!r} is not supported; "
            "youtu-rag pools the last hidden state of a feature-extraction model"
        )
    length = config.get("max_seq_length")
    return None if length is None else int(length)
