"""YoutuReranker: a cross-encoder as LangChain's ``BaseDocumentCompressor``.

A drop-in for ``CrossEncoderReranker`` in a ``ContextualCompressionRetriever``: it keeps the
``top_n`` documents best for the query, best first, each with its ``relevance_score`` in its
metadata. The scoring is the core's (:class:`youtu_rag.Reranker`); this class only moves
documents in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from youtu_rag.backends.protocol import TextReranker, reranker_or_model


class YoutuReranker(BaseDocumentCompressor):
    """The ``top_n`` documents a cross-encoder scores best for the query.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever

            compressor = YoutuReranker(model="BAAI/bge-reranker-v2-m3", top_n=3)
            retriever = ContextualCompressionRetriever(
                base_compressor=compressor, base_retriever=store_retriever
            )
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | None = None
    """A cross-encoder checkpoint (hub id or local directory); or pass ``reranker``."""
    top_n: int = Field(default=3, ge=1)
    device: str | None = None
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = None
    _reranker: TextReranker = PrivateAttr()

    def __init__(self, *, reranker: TextReranker | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._reranker = reranker_or_model(
            reranker,
            self.model,
            device=self.device,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The ``top_n`` best of ``documents`` for ``query``, with ``relevance_score``."""
        ranked = self._reranker.rank(query, [doc.page_content for doc in documents], self.top_n)
        return [
            Document(
                page_content=documents[index].page_content,
                metadata={**documents[index].metadata, "relevance_score": score},
                id=documents[index].id,
            )
            for index, score in ranked
        ]
