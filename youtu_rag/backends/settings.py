"""Every embedder option, declared once: the fields of every adapter.

:class:`EmbedderSettings` holds :class:`~youtu_rag.YoutuEmbedder`'s keywords (a test keeps them
equal) plus the options of the remote embedders (:data:`SERVER_OPTIONS` for a ``youtu-rag
serve`` server, :data:`TENCENT_CLOUD_OPTIONS` for the Tencent Cloud API), validates them,
refuses what it does not understand (naming our equivalent where one exists) and builds the
embedder: the one place where options become an embedder. :class:`EmbedderAdapter` adds the
built embedder, kept in step with the fields: the LangChain and LlamaIndex adapters are
subclasses, and the Chroma function validates through the settings, so a new option reaches
all three in one edit.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from youtu_rag.backends.http import HttpEmbedder
from youtu_rag.backends.protocol import TextEmbedder, create_embedder, is_remote, is_server_url
from youtu_rag.backends.tencent_cloud import TencentCloudEmbedder
from youtu_rag.model.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_TOKENS,
    POOLING_MODES,
    Attention,
    PoolingMode,
)
from youtu_rag.model.profiles import YOUTU_EMBEDDING, Pooling
from youtu_rag.model.st_config import DOCUMENT_PROMPT_NAMES

if TYPE_CHECKING:
    from youtu_rag.model.embedder import YoutuEmbedder

#: Other names of our options, as LangChain's and LlamaIndex's Hugging Face classes spell them,
#: accepted where the meaning is identical.
ALIASES = {
    "model": "model_name_or_path",
    "model_name": "model_name_or_path",
    "text_instruction": "document_instruction",
    "show_progress_bar": "show_progress",
}
#: Keys of the Hugging Face classes' ``model_kwargs`` / ``encode_kwargs`` that mean what one
#: of our options means, and that option.
MODEL_KWARGS = {"device": "device", "trust_remote_code": "trust_remote_code"}
ENCODE_KWARGS = {"batch_size": "batch_size", "show_progress_bar": "show_progress"}
#: Options that say "L2-normalise the vectors", which ours always are: True is accepted.
NORMALISE_OPTIONS = ("normalize", "normalize_embeddings")
_NORMALISED = "vectors are always L2-normalised; drop it"
_ONE_PROCESS = (
    "the model runs once, in this process, on one device: to share one model between "
    "processes start `youtu-rag serve` and pass base_url=; to index on many machines, "
    "`youtu-rag index --ray`"
)
#: Options of those classes with no counterpart here, and what to do instead.
FOREIGN_OPTIONS = {
    "normalize": _NORMALISED,
    "normalize_embeddings": _NORMALISED,
    "cache_folder": "models are read from the Hugging Face cache: set HF_HUB_CACHE to that "
    "folder, or pass the model's local directory as the model",
    "prompts": "use query_instruction= and document_instruction=",
    "default_prompt_name": "use query_instruction= and document_instruction=",
    "max_seq_length": "use max_length=",
    "truncate_dim": "not supported: vectors keep the model's full dimension",
    "multi_process": _ONE_PROCESS,
    "parallel_process": _ONE_PROCESS,
    "target_devices": _ONE_PROCESS,
    "tokenizer_name": "not supported: the tokenizer is the model's own",
    "backend": "not supported: the model runs on torch",
}


#: Fields for embedding through a server instead of a model loaded here.
SERVER_OPTIONS = (
    "base_url",
    "api_key",
    "server_model",
    "server_preset",
    "query_prefix",
    "document_prefix",
    "input_type",
    "encoding_format",
    "dimension",
    "api_key_env",
)
#: Server fields whose HttpEmbedder keyword has another name.
SERVER_KEYWORDS = {"server_model": "model", "server_preset": "preset"}
#: Fields that only the Tencent Cloud API (``tencent-cloud:<model>``) understands.
TENCENT_CLOUD_OPTIONS = ("region", "endpoint", "protocol", "concurrency", "max_retries", "timeout")
#: Options a server client takes besides its URL, key and model.
_SERVER_TAKES = ("batch_size", "timeout", "max_length")


def _option(default: Any, description: str, **constraints: Any) -> Any:
    # Frozen field by field, not only model-wide: LlamaIndex assigns its own fields
    # (callback_manager) on a live embedding, and ours must still refuse assignment.
    return Field(default, description=description, frozen=True, **constraints)


class EmbedderSettings(BaseModel):
    """Every embedder option, validated; :meth:`build` makes the embedder they describe.

    The fields are :class:`~youtu_rag.YoutuEmbedder`'s keywords, then ``base_url`` /
    ``api_key`` (embed through a ``youtu-rag serve`` server), then the Tencent Cloud API's
    options (for ``tencent-cloud:<model>``). ``None`` keeps the model's own rule (its built-in
    profile, or its sentence-transformers files) or the backend's default. Unknown options
    raise, naming our equivalent where there is one; ``model`` / ``model_name`` and
    ``text_instruction`` are accepted for ``model_name_or_path`` and ``document_instruction``.
    Options set to something the chosen backend cannot honour raise in :meth:`build`.
    ``api_key`` is a secret: never in ``model_dump``, a config or a ``repr``.

    Example:
        .. code-block:: python

            from youtu_rag.backends.settings import EmbedderSettings

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
        YOUTU_EMBEDDING,
        "Hub id or local directory of the model, or tencent-cloud:MODEL for the Tencent Cloud "
        "API (credentials from TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY). With "
        "base_url, a model other than the default is checked against the server's.",
        alias="model",
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
    base_url: str | None = _option(
        None,
        "A youtu-rag serve server to embed with instead of loading the model here; the "
        "server's model, device and instructions apply.",
    )
    api_key: SecretStr | None = _option(
        None,
        "The server's API key; None reads YOUTU_RAG_API_KEY if set. Never stored.",
        exclude=True,
    )
    server_model: str | None = _option(
        None, "With base_url of another server: the model name it is sent (None: its first)."
    )
    server_preset: str | None = _option(
        None,
        "With base_url of a server other than youtu-rag's: how its model marks queries and "
        "documents (e5, bge-en, bge-zh, youtu, input-type, none; see SERVER_PRESETS).",
    )
    query_prefix: str | None = _option(
        None, "With base_url of another server: text put before each query (e5: 'query: ')."
    )
    document_prefix: str | None = _option(
        None, "With base_url of another server: text put before each document."
    )
    input_type: bool | None = _option(
        None, "With base_url of another server: send input_type query / document."
    )
    encoding_format: Literal["float", "base64"] | None = _option(
        None, "With base_url: how vectors travel; None: float (base64 for youtu-rag's)."
    )
    dimension: int | None = _option(
        None, "With base_url of another server: its dimension (None: found by a probe).", ge=1
    )
    api_key_env: str | None = _option(
        None,
        "With base_url: the environment variable holding the key (YOUTU_RAG_API_KEY).",
        exclude=True,
    )
    region: str | None = _option(
        None, "Tencent Cloud region; None: TENCENTCLOUD_REGION or ap-guangzhou."
    )
    endpoint: str | None = _option(None, "Tencent Cloud API host or URL; None: the public one.")
    protocol: str | None = _option(None, "http or https for the Tencent Cloud API; None: https.")
    concurrency: int | None = _option(
        None, "Tencent Cloud API calls in flight; None: the API client's default.", ge=1
    )
    max_retries: int | None = _option(
        None, "Retries of a throttled or failed Tencent Cloud call; None: its default.", ge=0
    )
    timeout: float | None = _option(
        None, "Seconds per remote call (server or Tencent Cloud); None: the client's.", gt=0
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
        torch = sys.modules.get("torch")  # not imported: the value cannot be torch's
        if torch is not None and isinstance(value, torch.device | torch.dtype):
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
        """The local options as :class:`~youtu_rag.YoutuEmbedder` keywords."""
        return {name: getattr(self, name) for name in local_options()}

    def changed_options(self) -> dict[str, Any]:
        """The options set to something other than their default, model, URL and key aside."""
        return {
            name: getattr(self, name)
            for name, field in EmbedderSettings.model_fields.items()
            if name not in ("model_name_or_path", *SERVER_OPTIONS)
            and getattr(self, name) != field.default
        }

    def build(self) -> YoutuEmbedder | TencentCloudEmbedder | HttpEmbedder:
        """The embedder these settings describe: a server's client with ``base_url``, the
        Tencent Cloud API for ``tencent-cloud:<model>``, else the model loaded here (sharing
        an already loaded backbone).

        Returns:
            An :class:`~youtu_rag.backends.http.HttpEmbedder`, a
            :class:`~youtu_rag.TencentCloudEmbedder` or a :class:`~youtu_rag.YoutuEmbedder`.

        Raises:
            OSError: the model cannot be found.
            ValueError: an option is set that the chosen backend cannot honour (the message
                names it), or the model does not accept an option (e.g. ``attention`` on a
                model that is not a ``utu`` checkpoint).
            EmbeddingServerError: the server at ``base_url`` refuses the key or serves another
                model.
        """
        changed = self.changed_options()
        base_url, model = self.base_url, self.model_name_or_path
        if base_url is None and is_server_url(model):
            base_url, model = model, YOUTU_EMBEDDING  # the URL is the model: no name to check
        if base_url is not None:
            _refuse(changed, _SERVER_TAKES, "with base_url: the server's model settings apply")
            server = {
                SERVER_KEYWORDS.get(name, name): getattr(self, name)
                for name in SERVER_OPTIONS
                if name not in ("base_url", "api_key")
            }
            server["model"] = self.server_model or (None if model == YOUTU_EMBEDDING else model)
            key = None if self.api_key is None else self.api_key.get_secret_value()
            return HttpEmbedder(base_url, api_key=key, **server, **changed)
        server_only = [name for name in SERVER_OPTIONS if getattr(self, name) is not None]
        if server_only:
            raise ValueError(f"{', '.join(server_only)}: for a server; pass base_url too")
        if is_remote(self.model_name_or_path):
            return create_embedder(self.model_name_or_path, **changed)
        _refuse(changed, tuple(local_options()), f"for {self.model_name_or_path} (a local model)")
        from youtu_rag.model.embedder import YoutuEmbedder

        return YoutuEmbedder(**self.embedder_options())


def local_options() -> list[str]:
    """The fields that are :class:`~youtu_rag.YoutuEmbedder` keywords, in order."""
    return [
        name
        for name in EmbedderSettings.model_fields
        if name not in (*SERVER_OPTIONS, *TENCENT_CLOUD_OPTIONS)
    ]


def _refuse(changed: Mapping[str, Any], accepted: tuple[str, ...], why: str) -> None:
    unknown = sorted(set(changed) - set(accepted))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} cannot be set {why}")


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
    options = _unpack_huggingface_options(data)
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


def _unpack_huggingface_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the Hugging Face classes' ``model_kwargs``, ``encode_kwargs`` and
    ``query_encode_kwargs`` spread into our options (a ``prompt`` there is the document or query
    instruction), their defaults (``multi_process=False``, ``cache_folder=None``) dropped, and a
    request to normalise (which we always do) dropped.

    Raises:
        ValueError: a key whose meaning we do not have (``normalize_embeddings=False``: ours
            are always normalised; anything else unknown), naming it.
    """
    options = dict(data)
    for key in ("multi_process", "parallel_process", "cache_folder", "target_devices"):
        if key in options and not options[key]:
            del options[key]  # the default: nothing asked that we do not do
    groups = (
        ("model_kwargs", MODEL_KWARGS, None),
        ("encode_kwargs", ENCODE_KWARGS, "document"),
        ("query_encode_kwargs", ENCODE_KWARGS, "query"),
    )
    for group, known, side in groups:
        given = options.pop(group, None)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ValueError(f"{group} must be a dict, got {type(given).__name__}")
        entries = dict(given)
        if side is not None:
            _drop_normalise(entries, f"{group}[...]")
            _take_prompt(entries, group, side, options)
        unknown = sorted(set(entries) - set(known))
        if unknown:
            raise ValueError(
                f"{group} {', '.join(map(repr, unknown))} not understood; {group} may hold "
                f"{', '.join(known)}"
                + (", prompt and normalize_embeddings=True" if side is not None else "")
            )
        for key, value in entries.items():
            name = known[key]
            if name in options and options[name] != value:
                raise ValueError(f"{group}[{key!r}]={value!r} and {name}={options[name]!r} differ")
            options[name] = value
    _drop_normalise(options, "")
    return options


def _take_prompt(entries: dict[str, Any], group: str, side: str, options: dict[str, Any]) -> None:
    """A sentence-transformers ``prompt`` in ``entries`` becomes the side's instruction (the
    verbatim prefix for a plain checkpoint; Youtu-Embedding takes the task text); a
    ``prompt_name`` must name the side's own prompt, which is the default already."""
    name = entries.pop("prompt_name", None)
    own = ("query",) if side == "query" else DOCUMENT_PROMPT_NAMES
    if name is not None and name not in own:
        raise ValueError(
            f"{group}['prompt_name']={name!r}: the {side} instruction is {side}_instruction= "
            "(the checkpoint's own prompt is the default)"
        )
    prompt = entries.pop("prompt", None)
    if prompt is None:
        return
    key = f"{side}_instruction"
    if key in options and options[key] != prompt:
        raise ValueError(f"{group}['prompt']={prompt!r} and {key}={options[key]!r} differ")
    options[key] = prompt


def _drop_normalise(options: dict[str, Any], where: str) -> None:
    for key in NORMALISE_OPTIONS:
        if key not in options:
            continue
        if options[key] is not True:
            raise ValueError(
                f"{where.replace('...', key) or key}={options[key]!r} is not supported: "
                "youtu-rag vectors are always L2-normalised (pass True or leave it out)"
            )
        del options[key]


class EmbedderAdapter(EmbedderSettings):
    """Settings plus the embedder built from them, never out of step.

    The embedder is built once, after validation. Every way to get a changed or copied object
    goes through validation again (pydantic's ``model_copy(update=...)`` would not), so its
    vectors always match its fields; a copy with the same model settings shares the loaded
    backbone instead of duplicating the weights, and a pickle carries settings, not weights.
    """

    _embedder: TextEmbedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Build the embedder once the fields are validated (pydantic calls this)."""
        self._embedder = self.build()

    @property
    def embedder(self) -> TextEmbedder:
        """The embedder doing the work (an :class:`~youtu_rag.backends.http.HttpEmbedder`
        with ``base_url``)."""
        return self._embedder

    def __getstate__(self) -> dict[Any, Any]:
        """Settings only: the embedder is rebuilt on unpickling (sharing a loaded backbone),
        and the API key stays behind (the unpickled object reads ``YOUTU_RAG_API_KEY``)."""
        state: dict[Any, Any] = super().__getstate__()
        state["__dict__"] = {**state["__dict__"], "api_key": None}
        private = dict(state.get("__pydantic_private__") or {})
        private.pop("_embedder", None)
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        """Restore the settings and build their embedder (pickle calls this)."""
        super().__setstate__(state)
        if "_embedder" not in (self.__pydantic_private__ or {}):
            self._embedder = self.build()

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
