"""YoutuEmbedding: the core as a LlamaIndex ``BaseEmbedding``.

LlamaIndex embeds nodes through ``_get_text_embeddings`` and questions through
``_get_query_embedding``, so documents and queries reach the core's two entry points and the
query instruction is applied (and masked out of the mean) by the core alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict, model_validator
from typing_extensions import Self

from youtu_rag.backends.settings import EmbedderAdapter


class YoutuEmbedding(EmbedderAdapter, BaseEmbedding):
    """Youtu-Embedding (or any other checkpoint the core can embed) for LlamaIndex.

    The core's options (:class:`~youtu_rag.backends.settings.EmbedderSettings`) are frozen
    fields, and
    ``text_instruction`` is accepted for ``document_instruction`` as in
    ``HuggingFaceEmbedding``; LlamaIndex's own fields (``embed_batch_size``,
    ``callback_manager``, ...) stay assignable, as LlamaIndex assigns them. ``model_name``
    follows ``model_name_or_path``. ``embed_batch_size`` (LlamaIndex's texts per call) defaults
    to ``batch_size`` (the core's texts per forward pass), so each LlamaIndex batch is one core
    call of full forward passes. Instances with the same (model, device, dtype) share one
    loaded model. ``base_url=`` embeds through a ``youtu-rag serve`` server and
    ``model="tencent-cloud:<model>"`` through the Tencent Cloud API.

    Example:
        .. code-block:: python

            from llama_index.embeddings.youtu import YoutuEmbedding

            embed_model = YoutuEmbedding(model="sentence-transformers/all-MiniLM-L6-v2")
            vector = embed_model.get_query_embedding("What is masked mean pooling?")
    """

    model_config = ConfigDict(frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _one_core_call_per_batch(cls, data: Any) -> Any:
        if isinstance(data, dict) and "embed_batch_size" not in data:
            batch_size = data.get("batch_size", cls.model_fields["batch_size"].default)
            return {**data, "embed_batch_size": batch_size}
        return data

    @model_validator(mode="after")
    def _name_the_model(self) -> Self:
        self.model_name = self.model_name_or_path
        return self

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this class under (``to_dict``'s ``class_name``)."""
        return "YoutuEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        vector: Embedding = self.embedder.encode_queries([query])[0].tolist()
        return vector

    def _get_text_embedding(self, text: str) -> Embedding:
        vector: Embedding = self.embedder.encode_documents([text])[0].tolist()
        return vector

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        vectors: list[Embedding] = self.embedder.encode_documents(texts).tolist()
        return vectors

    # The async variants run the model in a worker thread so the event loop stays free.

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
