"""Names, sizes and kinds every layer (and the CLI's help) needs without loading torch."""

from typing import Any, Literal

YOUTU_EMBEDDING = "tencent/Youtu-Embedding"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: Texts per forward pass.
DEFAULT_BATCH_SIZE = 32
#: Padded tokens per forward pass: bounds activation memory whatever the batch size.
DEFAULT_MAX_BATCH_TOKENS = 16384

#: How the pooled positions become one vector, named as sentence-transformers names them:
#: ``"mean"`` averages them, ``"cls"`` takes the first, ``"lasttoken"`` the last.
PoolingMode = Literal["mean", "cls", "lasttoken"]
POOLING_MODES: tuple[PoolingMode, ...] = ("mean", "cls", "lasttoken")

UTU_MODEL_TYPE = "utu"

#: ``"bidirectional"``: every token attends to every non-padding token (how Youtu-Embedding was
#: trained and evaluated). ``"causal"``: each token attends to itself and earlier tokens only.
Attention = Literal["bidirectional", "causal"]


def is_utu(config: dict[str, Any]) -> bool:
    """Whether a ``config.json`` is a Youtu-Embedding (``utu``) checkpoint's.

    Args:
        config: the parsed ``config.json``.

    Returns:
        ``True`` when its ``model_type`` is ``utu``.
    """
    return config.get("model_type") == UTU_MODEL_TYPE
