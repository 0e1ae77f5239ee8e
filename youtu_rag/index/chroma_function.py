"""YoutuEmbeddingFunction: the core as a Chroma ``EmbeddingFunction``.

Chroma stores an embedding function's name and config with the collection and rebuilds it when
the collection is reopened, so a plain ``client.get_collection(name)`` in a new process can still
embed text; that only works for a registered class whose config fully describes the embedder.
Documents go through ``__call__`` and queries through ``embed_query``, so the instruction prefix
reaches queries only, exactly as the core does it.

A stored config is data written by whoever could write to the database or server, so
:meth:`~YoutuEmbeddingFunction.build_from_config` never lets it switch on ``trust_remote_code``
(which imports Python files shipped with a model): it refuses such a config unless this process
opted in, by :data:`TRUST_REMOTE_CODE_ENV` or an explicit argument, or already loaded that very
model with remote code on its own word.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

from chromadb.api.models.CollectionCommon import CollectionCommon
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from youtu_rag.backends.destinations import DestinationRefusedError, check_destination
from youtu_rag.backends.http import HttpEmbedder
from youtu_rag.backends.protocol import TextEmbedder, is_local_embedder, is_remote
from youtu_rag.backends.settings import EmbedderSettings
from youtu_rag.backends.tencent_cloud import TencentCloudEmbedder
from youtu_rag.index.fingerprint import (
    MODEL_KEY,
    describe_differences,
    differences,
    fingerprint,
    records_fingerprint,
)
from youtu_rag.model.profiles import YOUTU_EMBEDDING, get_profile

logger = logging.getLogger(__name__)

#: Set to ``1`` to let collection configs load models with ``trust_remote_code=True``.
TRUST_REMOTE_CODE_ENV = "YOUTU_RAG_TRUST_REMOTE_CODE"

# Models this process loaded with remote code because its own code asked for it (an embedder
# built with trust_remote_code=True, or a profile that needs it), not because a config said so.
# Rebuilding one of these from a stored config runs no code that is not already running.
_trusted_models: set[str] = set()
_trusted_lock = threading.Lock()


class RemoteCodeRefusedError(PermissionError):
    """A stored embedding-function config asked for ``trust_remote_code`` without the process's
    consent."""


def remote_code_opted_in() -> bool:
    """Whether :data:`TRUST_REMOTE_CODE_ENV` is set to a true value (1, true, yes, on)."""
    return os.environ.get(TRUST_REMOTE_CODE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def wants_remote_code(config: dict[str, Any]) -> bool:
    """Whether rebuilding ``config`` would load its model with ``trust_remote_code=True``.

    A config without the key gets the model profile's default, so that is checked too.
    """
    requested = config.get("trust_remote_code")
    if requested is not None:
        return bool(requested)
    model = config.get("model_name_or_path", YOUTU_EMBEDDING)
    return get_profile(str(model)).trust_remote_code


def check_stored_config(
    config: dict[str, Any], *, collection: str | None = None, trust_remote_code: bool = False
) -> None:
    """Refuse a stored config that would run model code the process did not agree to."""
    if not wants_remote_code(config):
        return
    model = str(config.get("model_name_or_path", YOUTU_EMBEDDING))
    with _trusted_lock:
        trusted = model in _trusted_models
    if trust_remote_code or trusted or remote_code_opted_in():
        return
    where = f"collection {collection!r}" if collection is not None else "a collection"
    raise RemoteCodeRefusedError(
        f"{where} stores an embedding function that loads model {model!r} with "
        "trust_remote_code=True, which would run Python code shipped with that model; refused. "
        f"If you trust whoever can write to this database and that model, set "
        f"{TRUST_REMOTE_CODE_ENV}=1 (see the README's Security section)"
    )


#: Config keys that change how vectors are computed, not what they are.
_RUN_OPTIONS = frozenset(
    {"device", "dtype", "batch_size", "max_batch_tokens", "concurrency", "max_retries", "timeout"}
)


class FingerprintMismatchError(ValueError):
    """The function embeds differently from the embedder the collection records."""


def _calling_collection() -> CollectionCommon[Any] | None:
    """The Chroma collection on whose behalf the function is rebuilt or called, if any.

    Chroma calls :meth:`YoutuEmbeddingFunction.build_from_config` with the config alone, and
    the function with the texts alone, from a method of the collection object; its caller's
    frames are the only place the collection is.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, CollectionCommon):
            return owner
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _collection_being_loaded() -> str | None:
    """The name of the Chroma collection whose stored config is being rebuilt, if any."""
    collection = _calling_collection()
    return None if collection is None else str(collection.name)


def _available(device: str) -> bool:
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return True


@register_embedding_function
class YoutuEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function over :class:`~youtu_rag.YoutuEmbedder`.

    Takes the embedder's options (:class:`~youtu_rag.backends.settings.EmbedderSettings`: unknown
    ones raise), ``tencent-cloud:<model>`` for the Tencent Cloud API; use :meth:`from_embedder` to
    wrap one already loaded. With ``base_url=`` it embeds through a ``youtu-rag serve`` server
    instead of loading the model (``api_key=`` or ``YOUTU_RAG_API_KEY`` for its key, which is never
    stored). The embedder cannot be swapped afterwards, so :meth:`get_config` always describes the
    vectors it makes."""

    _embedder: TextEmbedder | None
    _config: dict[str, Any]

    def __init__(self, model_name_or_path: str | None = None, **options: Any) -> None:
        """Build the embedder.

        Args:
            model_name_or_path: hub id, local directory or ``tencent-cloud:<model>``
                (``None``: Youtu-Embedding, unless an alias such as ``model=`` names it).
            **options: further :class:`~youtu_rag.backends.settings.EmbedderSettings` options,
                ``base_url=`` and ``api_key=`` included.

        Raises:
            pydantic.ValidationError: an option is unknown or invalid.
            ValueError: an option is set that the chosen backend cannot honour.
            OSError: the model cannot be found.
        """
        if model_name_or_path is not None:
            options["model_name_or_path"] = model_name_or_path
        self._embedder = embedder = EmbedderSettings(**options).build()
        _remember_trust(embedder)

    @classmethod
    def from_embedder(cls, embedder: TextEmbedder) -> YoutuEmbeddingFunction:
        """Wrap an existing embedder, sharing its loaded model and settings.

        Args:
            embedder: the embedder to wrap.

        Returns:
            A function that embeds with exactly that embedder.
        """
        function = cls.__new__(cls)
        function._embedder = embedder
        _remember_trust(embedder)
        return function

    @property
    def embedder(self) -> TextEmbedder:
        """The embedder; one rebuilt from a stored config loads on first use.

        Chroma (1.5) rebuilds a collection's function from its config on every write and schema
        read, where nothing is embedded: a writer of ready-made vectors loads no model.
        """
        if self._embedder is None:
            self._embedder = EmbedderSettings(**self._config).build()
        return self._embedder

    def __call__(self, input: Documents) -> Embeddings:
        """Embed documents (stored texts) with the document instruction.

        Args:
            input: the documents.

        Returns:
            One float32 vector per document, in order.

        Raises:
            TypeError: a text is not a string (the message names its index).
            ValueError: a text is empty or whitespace only.
        """
        self._check_collection(_calling_collection())
        return list(self.embedder.encode_documents(input))

    def embed_query(self, input: Documents) -> Embeddings:
        """``__call__`` for search queries: the query instruction instead of the document one."""
        self._check_collection(_calling_collection())
        return list(self.embedder.encode_queries(input))

    def _check_collection(self, collection: CollectionCommon[Any] | None) -> None:
        """Refuse to embed for a collection that records another embedder.

        Chroma 1.5 compares only :meth:`name` when ``get_collection(name, embedding_function=f)``
        is given a function, so a function with another pooling, prefix, model or backend
        would query and write the collection silently; this is the check ``ChromaStore`` makes.
        A collection with no youtu-rag fingerprint is the caller's own business.
        """
        if collection is None:
            return
        recorded = dict(collection.metadata or {})
        embedder = self.embedder
        if not records_fingerprint(recorded) or not (
            is_local_embedder(embedder) or isinstance(embedder, TencentCloudEmbedder)
        ):
            return
        different = differences(recorded, fingerprint(embedder))
        if different:
            raise FingerprintMismatchError(
                f"collection {collection.name!r} was built with model "
                f"{recorded.get(MODEL_KEY)!r} and this embedding function differs (index vs "
                f"function: {describe_differences(different)}); refused: pass a function with the "
                "collection's settings, or none to use the stored one"
            )

    @staticmethod
    def name() -> str:
        """The name Chroma stores with a collection to find this class again."""
        return "youtu_rag"

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Refuse, on ``collection.modify``, a function that would embed differently: only how
        the vectors are computed (device, batching, timeouts) may change, not what they are.

        Raises:
            FingerprintMismatchError: a setting that shapes the vectors differs.
        """
        changed = sorted(
            key
            for key in {*old_config, *new_config}
            if key not in _RUN_OPTIONS and old_config.get(key) != new_config.get(key)
        )
        if changed:
            raise FingerprintMismatchError(
                f"the new embedding function differs in {', '.join(changed)}: its vectors would "
                "not match the collection's; index into another collection"
            )

    def is_legacy(self) -> bool:
        """Never: Chroma's own test rebuilds the function from its config, which a config with a
        destination the process has not allowed refuses, and a "legacy" function would lose its
        space and config on a new collection."""
        return False

    def default_space(self) -> Space:
        """``cosine``: the vectors are unit length, so cosine ranks as inner product does and
        reads as a similarity."""
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        """Everything that shapes the vectors, as JSON, to rebuild this embedder elsewhere.

        The values are the resolved ones (device, dtype, instructions, pooling), so a later
        version with other defaults still rebuilds the same vectors. Progress display is left
        out: it belongs to the process, not to the collection; so are API credentials and a
        server's API key, read from the environment wherever the function is rebuilt.

        Returns:
            :class:`~youtu_rag.backends.settings.EmbedderSettings` options.
        """
        if self._embedder is None:
            return dict(self._config)
        embedder = self._embedder
        if isinstance(embedder, HttpEmbedder):
            return {
                "base_url": embedder.base_url,
                "model_name_or_path": embedder.model_name,
                **embedder.server_options(),
            }
        if isinstance(embedder, TencentCloudEmbedder):
            return {"model_name_or_path": embedder.model_name, **embedder.settings()}
        if not is_local_embedder(embedder):
            raise TypeError(f"cannot describe {type(embedder).__name__} in a collection config")
        return {
            "model_name_or_path": embedder.model_name,
            "device": str(embedder.backbone.device),
            "dtype": str(embedder.backbone.dtype).removeprefix("torch."),
            "max_length": embedder.max_length,
            "batch_size": embedder.batch_size,
            "max_batch_tokens": embedder.max_batch_tokens,
            "query_instruction": embedder.query_task,
            "document_instruction": embedder.document_task,
            "trust_remote_code": embedder.profile.trust_remote_code,
            "pooling": embedder.pooling,
            "pooling_mode": embedder.pooling_mode,
            "attention": embedder.attention,
        }

    @staticmethod
    def build_from_config(
        config: dict[str, Any],
        *,
        trust_remote_code: bool = False,
        allowed_destinations: Iterable[str] = (),
    ) -> YoutuEmbeddingFunction:
        """Rebuild from :meth:`get_config`; the model loads on first use, from the shared cache.

        Chroma rebuilds the function on every add or query of a reopened collection. A collection
        made on a GPU machine stays usable on one without: an unavailable device falls back to
        the best available one, with that device's default dtype.

        A config that would load its model with remote code raises
        :class:`RemoteCodeRefusedError` unless ``trust_remote_code`` is passed here,
        :data:`TRUST_REMOTE_CODE_ENV` is set, or this process already loaded that model with
        remote code itself. Without that, the model is loaded with ``trust_remote_code=False``
        whatever its profile says.

        A config that sends texts somewhere (a ``base_url``, a Tencent Cloud endpoint other than
        the public one, or another region) raises
        :class:`~youtu_rag.backends.destinations.DestinationRefusedError` unless that URL is in
        ``allowed_destinations`` or
        :data:`~youtu_rag.backends.destinations.ALLOWED_DESTINATIONS_ENV`;
        credentials go only over https or to an allowed loopback address.

        Args:
            config: a stored :meth:`get_config`.
            trust_remote_code: allow a config that loads its model with remote code.
            allowed_destinations: URLs the stored config may send texts to.

        Returns:
            The function.

        Raises:
            pydantic.ValidationError: the config holds an unknown or invalid option.
            OSError: the model cannot be found here.
            RemoteCodeRefusedError: the config asks for remote code without consent.
            DestinationRefusedError: the config sends texts where the caller did not allow.
        """
        collection = _collection_being_loaded()
        if "api_key" in config or "api_key_env" in config:
            # Which secret is sent is the process's choice, never the database's.
            raise DestinationRefusedError(
                f"collection {collection!r} stores an API key setting; refused"
            )
        check_destination(config, collection=collection, allowed=allowed_destinations)
        if wants_remote_code(config):
            check_stored_config(config, collection=collection, trust_remote_code=trust_remote_code)
        options = dict(config)
        if "base_url" not in options and not is_remote(str(options.get("model_name_or_path"))):
            options["trust_remote_code"] = wants_remote_code(config)
        device = options.get("device")
        if isinstance(device, str) and not _available(device):
            from youtu_rag.model.loading import resolve_device

            fallback = str(resolve_device(None))
            logger.warning("device %s is not available here; using %s", device, fallback)
            options["device"] = fallback
            options["dtype"] = None
        EmbedderSettings(**options)  # an unknown or invalid option fails here, not on first use
        function = YoutuEmbeddingFunction.__new__(YoutuEmbeddingFunction)
        function._embedder = None
        function._config = options
        return function


def _remember_trust(embedder: TextEmbedder) -> None:
    """Note a model the caller's own code loaded with remote code (see ``_trusted_models``)."""
    if is_local_embedder(embedder) and embedder.profile.trust_remote_code:
        with _trusted_lock:
            _trusted_models.add(embedder.model_name)
