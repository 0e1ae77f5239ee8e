"""YoutuEmbeddings: the core as a LangChain ``Embeddings``.

LangChain vector stores call ``embed_documents`` when indexing and ``embed_query`` when
searching, so the query instruction is applied (and masked out of the mean) by the core without
anyone writing it into ``page_content``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from youtu_rag import YOUTU_EMBEDDING
from youtu_rag.backends import TextEmbedder, create_embedder
from youtu_rag.http_embedder import HttpEmbedder


class YoutuEmbeddings(BaseModel, Embeddings):
    """Youtu-Embedding (or any profile of the core) for LangChain.

    Instances with the same (model, device, dtype) share one loaded model, so a retriever and a
    chain may each hold their own. The fields describe the loaded model, hence frozen.

    Example:
        .. code-block:: python

            from langchain_youtu import YoutuEmbeddings

            embeddings = YoutuEmbeddings(model="sentence-transformers/all-MiniLM-L6-v2")
            vector = embeddings.embed_query("What is masked mean pooling?")
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    model_name: str = Field(default=YOUTU_EMBEDDING, alias="model")
    """Hub id or local directory of the model, or ``tencent-cloud:MODEL`` for the Tencent Cloud
    API (credentials from ``TENCENTCLOUD_SECRET_ID`` / ``TENCENTCLOUD_SECRET_KEY``)."""
    device: str | None = None
    """``cuda``, ``mps`` or ``cpu``; ``None`` picks the best available."""
    dtype: str | None = None
    """``float32``, ``bfloat16`` or ``float16``; ``None`` is bfloat16 on CUDA, else float32."""
    batch_size: int = Field(default=32, ge=1)
    """Texts per forward pass (also capped by a padded-token budget in the core)."""
    max_length: int | None = None
    """Tokens per text, prefix included; ``None`` keeps the model profile's limit."""
    query_instruction: str | None = None
    """Task text or C-MTEB task name for queries; ``None`` keeps the profile's default."""
    document_instruction: str | None = None
    """Task text or C-MTEB task name for documents; ``None`` keeps the profile's (none)."""
    trust_remote_code: bool | None = None
    """Run the model repository's own code; ``None`` follows the profile."""
    show_progress: bool = False
    """Show a progress bar while embedding."""
    base_url: str | None = None
    """A ``youtu-rag serve`` server to embed with instead of loading the model here; the
    server's model and instructions apply, and the loading options above are ignored."""
    api_key: SecretStr | None = None
    """The server's API key; ``None`` reads ``YOUTU_RAG_API_KEY`` if set."""

    _embedder: TextEmbedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
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

    @property
    def embedder(self) -> TextEmbedder:
        """The core embedder doing the work (an :class:`HttpEmbedder` with ``base_url``)."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the document instruction (none by default)."""
        vectors: list[list[float]] = self._embedder.encode_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one search query with the query instruction."""
        vector: list[float] = self._embedder.encode_queries([text])[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents in a worker thread, keeping the event loop free."""
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query in a worker thread, keeping the event loop free."""
        return await run_in_executor(None, self.embed_query, text)
