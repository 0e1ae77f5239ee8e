"""Every embedder option, declared once: the fields of every adapter.

:class:`EmbedderSettings` holds exactly :class:`~youtu_rag.YoutuEmbedder`'s keywords (a test
keeps them equal), validates them, refuses what it does not understand (naming our equivalent
where one exists) and builds the embedder. :class:`EmbedderAdapter` adds the built embedder,
kept in step with the fields: the LangChain and LlamaIndex adapters are subclasses, and the
Chroma function validates through the settings, so a new option reaches all three in one edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from typing_extensions import Self

from youtu_rag.embedder import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, YoutuEmbedder
from youtu_rag.pooling import POOLING_MODES, PoolingMode
from youtu_rag.profiles import YOUTU_EMBEDDING, Pooling
from youtu_rag.utu import Attention

#: Other names of our options, as LangChain's and LlamaIndex's Hugging Face classes spell them,
#: accepted where the meaning is identical.
ALIASES = {
    "model": "model_name_or_path",
    "model_name": "model_name_or_path",
    "text_instruction": "document_instruction",
}
_NORMALISED = "vectors are always L2-normalised; drop it"
_ONE_PROCESS = "not supported: the model runs in this process, on one device"
#: Options of those classes with no counterpart here, and what to do instead.
FOREIGN_OPTIONS = {
    "normalize": _NORMALISED,
    "normalize_embeddings": _NORMALISED,
    "model_kwargs": "pass device= and dtype= directly: model_kwargs={'device': 'cuda'} is "
    "device='cuda'",
    "encode_kwargs": "pass batch_size= directly; vectors are always L2-normalised",
    "query_encode_kwargs": "pass batch_size= directly; the query instruction is query_instruction=",
    "cache_folder": "set HF_HOME, or pass a local directory as the model",
    "prompts": "use query_instruction= and document_instruction=",
    "default_prompt_name": "use query_instruction= and document_instruction=",
    "max_seq_length": "use max_length=",
    "show_progress_bar": "use show_progress=",
    "truncate_dim": "not supported: vectors keep the model's full dimension",
    "multi_process": _ONE_PROCESS,
    "parallel_process": _ONE_PROCESS,
    "target_devices": _ONE_PROCESS,
    "tokenizer_name": "not supported: the tokenizer is the model's own",
    "backend": "not supported: the model runs on torch",
}


def _option(default: Any, description: str, **constraints: Any) -> Any:
    # Frozen field by field, not only model-wide: LlamaIndex assigns its own fields
    # (callback_manager) on a live embedding, and ours must still refuse assignment.
    return Field(default, description=description, frozen=True, **constraints)


class EmbedderSettings(BaseModel):
    """Every :class:`~youtu_rag.YoutuEmbedder` option, validated; :meth:`build` makes one.

    ``None`` keeps the model's own rule (its built-in profile, or its sentence-transformers
    files). Unknown options raise, naming our equivalent where there is one; ``model`` /
    ``model_name`` and ``text_instruction`` are accepted for ``model_name_or_path`` and
    ``document_instruction``.

    Example:
        .. code-block:: python

            from youtu_rag.settings import EmbedderSettings

            settings = EmbedderSettings(model="sentence-transformers/all-MiniLM-L6-v2")
            embedder = settings.build()
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
    )

    model_name_or_path: str = _option(
        YOUTU_EMBEDDING, "Hub id or local directory of the model.", alias="model"
    )
    device: str | None = _option(None, "cuda, mps or cpu; None picks the best available.")
    dtype: str | None = _option(
        None, "float32, bfloat16 or float16; None is bfloat16 on CUDA, else float32."
    )
    max_length: int | None = _option(
        None, "Tokens per text, prefix included; None keeps the model's limit.", ge=1
    )
    batch_size: int = _option(
        DEFAULT_BATCH_SIZE, "Texts per forward pass (also capped by max_batch_tokens).", ge=1
    )
    query_instruction: str | None = _option(
        None, "Task text or C-MTEB task name for queries; None keeps the model's, '' none."
    )
    document_instruction: str | None = _option(
        None, "Task text or C-MTEB task name for documents; None keeps the model's, '' none."
    )
    trust_remote_code: bool | None = _option(
        None, "Run the checkpoint's own modelling code; None follows the profile."
    )
    show_progress: bool = _option(False, "Show a progress bar while embedding.")
    pooling: Pooling | None = _option(
        None, "Which tokens are pooled: text, all or exclude_prompt; None keeps the model's."
    )
    pooling_mode: PoolingMode | None = _option(
        None, "How they are reduced: mean, cls or lasttoken; None keeps the model's."
    )
    max_batch_tokens: int = _option(
        DEFAULT_MAX_BATCH_TOKENS, "Padded tokens per forward pass (bounds memory).", ge=1
    )
    attention: Attention | None = _option(
        None, "bidirectional or causal, for utu checkpoints; None is bidirectional."
    )

    @model_validator(mode="before")
    @classmethod
    def _understand_every_option(cls, data: Any) -> Any:
        """Map the accepted aliases to our names and refuse any other unknown option."""
        if not isinstance(data, Mapping):
            return data
        return canonical_options(cls, data)

    @field_validator("device", "dtype", mode="before")
    @classmethod
    def _torch_to_text(cls, value: Any) -> Any:
        """A ``torch.device`` or ``torch.dtype`` as its name, so settings stay JSON."""
        if isinstance(value, torch.device | torch.dtype):
            return str(value).removeprefix("torch.")
        return value

    @field_validator("pooling", mode="before")
    @classmethod
    def _pooling_is_not_a_mode(cls, value: Any) -> Any:
        if value in (*POOLING_MODES, "last"):
            raise ValueError(
                f"pooling={value!r} names a reduction: use pooling_mode="
                f"{'lasttoken' if value == 'last' else value!r} (pooling chooses the tokens: "
                "'text', 'all' or 'exclude_prompt')"
            )
        return value

    def embedder_options(self) -> dict[str, Any]:
        """The options as :class:`~youtu_rag.YoutuEmbedder` keywords."""
        return {name: getattr(self, name) for name in EmbedderSettings.model_fields}

    def build(self) -> YoutuEmbedder:
        """The embedder these settings describe (sharing an already loaded backbone).

        Returns:
            A :class:`~youtu_rag.YoutuEmbedder`.

        Raises:
            OSError: the model cannot be found.
            ValueError: the model does not accept an option (e.g. ``attention`` on a model that
                is not a ``utu`` checkpoint).
        """
        return YoutuEmbedder(**self.embedder_options())


def canonical_options(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with aliases renamed to our option names.

    Args:
        model: the settings class (or adapter) whose fields are the accepted names.
        data: keyword arguments as given.

    Returns:
        A new dict keyed by field names.

    Raises:
        ValueError: an option is unknown (the message names our equivalent where there is
            one), or one is given twice under two names with two values.
    """
    options = dict(data)
    for alias, name in ALIASES.items():
        if alias not in options:
            continue
        value = options.pop(alias)
        if alias in model.model_fields and name in options:
            continue  # the class's own field of that name (LlamaIndex's model_name) follows ours
        if name in options and options[name] != value:
            raise ValueError(f"{alias}={value!r} and {name}={options[name]!r} differ; give one")
        options[name] = value
    unknown = [key for key in options if key not in model.model_fields]
    if unknown:
        reasons = [
            f"{key} ({FOREIGN_OPTIONS[key]})" if key in FOREIGN_OPTIONS else key for key in unknown
        ]
        raise ValueError(
            f"{model.__name__} does not understand {', '.join(reasons)}; its options are "
            f"{', '.join(model.model_fields)}"
        )
    return options


class EmbedderAdapter(EmbedderSettings):
    """Settings plus the embedder built from them, never out of step.

    The embedder is built once, after validation. Every way to get a changed or copied object
    goes through validation again (pydantic's ``model_copy(update=...)`` would not), so its
    vectors always match its fields; a copy with the same model settings shares the loaded
    backbone instead of duplicating the weights, and a pickle carries settings, not weights.
    """

    _embedder: YoutuEmbedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Build the embedder once the fields are validated (pydantic calls this)."""
        self._embedder = self.build()

    @property
    def embedder(self) -> YoutuEmbedder:
        """The core embedder doing the work."""
        return self._embedder

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, validated and with an embedder built for its fields.

        Args:
            update: options to change, by name or accepted alias.
            deep: deep-copy the fields too (the embedder is rebuilt either way when updated).

        Returns:
            The copy.

        Raises:
            pydantic.ValidationError: an updated value is invalid or unknown.
        """
        if not update:
            return super().model_copy(deep=deep)
        fields = {
            name: getattr(self, name) for name in type(self).model_fields if name not in ALIASES
        }
        return self.model_validate({**fields, **canonical_options(type(self), update)})
