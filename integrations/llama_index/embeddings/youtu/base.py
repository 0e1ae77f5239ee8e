"""YoutuEmbedding: the core as a LlamaIndex ``BaseEmbedding``.

LlamaIndex embeds nodes through ``_get_text_embeddings`` and questions through
``_get_query_embedding``, so documents and queries reach the core's two entry points and the
query instruction is applied (and masked out of the mean) by the core alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from youtu_rag import YOUTU_EMBEDDING
from youtu_rag.backends import TextEmbedder, create_embedder
from youtu_rag.http_embedder import HttpEmbedder


class YoutuEmbedding(BaseEmbedding):
    """Youtu-Embedding (or any profile of the core) for LlamaIndex.

    ``embed_batch_size`` (LlamaIndex's texts per call) defaults to ``batch_size`` (the core's
    texts per forward pass), so each LlamaIndex batch is one core call of full forward passes.
    Instances with the same (model, device, dtype) share one loaded model.

    Example:
        .. code-block:: python

            from llama_index.embeddings.youtu import YoutuEmbedding

            embed_model = YoutuEmbedding(model="sentence-transformers/all-MiniLM-L6-v2")
            vector = embed_model.get_query_embedding("What is masked mean pooling?")
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    model_name: str = Field(
        default=YOUTU_EMBEDDING,
        alias="model",
        description="Hub id, local directory, or tencent-cloud:MODEL for the Tencent Cloud API.",
    )
    device: str | None = Field(
        default=None, description="cuda, mps or cpu; None picks the best available."
    )
    dtype: str | None = Field(
        default=None, description="float32, bfloat16 or float16; None: bf16 on CUDA, else fp32."
    )
    batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")
    max_length: int | None = Field(
        default=None, description="Tokens per text, prefix included; None keeps the profile's."
    )
    query_instruction: str | None = Field(
        default=None, description="Task text or C-MTEB task name for queries."
    )
    document_instruction: str | None = Field(
        default=None, description="Task text or C-MTEB task name for documents."
    )
    trust_remote_code: bool | None = Field(
        default=None, description="Run the model repository's code; None follows the profile."
    )
    show_progress: bool = Field(default=False, description="Progress bar inside each core call.")
    base_url: str | None = Field(
        default=None,
        description="A youtu-rag serve server to embed with instead of loading the model here.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="The server's API key; None reads YOUTU_RAG_API_KEY if set.",
    )

    _embedder: TextEmbedder = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        if "embed_batch_size" not in data:
            data["embed_batch_size"] = data.get("batch_size", 32)
        super().__init__(**data)
        if self.base_url is not None:
            self._embedder = HttpEmbedder(
                self.base_url,
                model=self.model_name if "model_name" in self.model_fields_set else None,
                api_key=None if self.api_key is None else self.api_key.get_secret_value(),
            )
            return
        self._embedder = create_embedder(
            self.model_name,
            device=self.device,
            dtype=self.dtype,
            max_length=self.max_length,
            batch_size=self.batch_size,
            query_instruction=self.query_instruction,
            document_instruction=self.document_instruction,
            trust_remote_code=self.trust_remote_code,
            show_progress=self.show_progress,
        )

    @classmethod
    def class_name(cls) -> str:
        return "YoutuEmbedding"

    @property
    def embedder(self) -> TextEmbedder:
        """The core embedder doing the work (an :class:`HttpEmbedder` with ``base_url``)."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        vector: Embedding = self._embedder.encode_queries([query])[0].tolist()
        return vector

    def _get_text_embedding(self, text: str) -> Embedding:
        vector: Embedding = self._embedder.encode_documents([text])[0].tolist()
        return vector

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        vectors: list[Embedding] = self._embedder.encode_documents(texts).tolist()
        return vectors

    # The async variants run the model in a worker thread so the event loop stays free.

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
