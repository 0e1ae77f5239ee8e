"""YoutuRetriever: youtu-rag's Chroma store as a LangChain ``BaseRetriever``.

Thin on purpose: embedding, filtering and MMR happen in :class:`youtu_rag.index.store.ChromaStore`;
this class only turns hits into ``Document`` objects and honours ``k`` per call.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from youtu_rag.index.fusion import DEFAULT_MODE, SearchMode
from youtu_rag.index.store import ChromaStore, Hit


def hit_to_document(hit: Hit) -> Document:
    """A ``Document`` with the chunk's metadata plus its ``id`` and cosine ``score``.

    Args:
        hit: one search result.

    Returns:
        The document, its ``id`` the chunk's id.
    """
    return Document(
        page_content=hit.text,
        metadata={**hit.metadata, "id": hit.id, "score": hit.score},
        id=hit.id,
    )


class YoutuRetriever(BaseRetriever):
    """Top-``k`` passages from a youtu-rag Chroma collection, best first.

    Example:
        .. code-block:: python

            from youtu_rag import MINILM, YoutuEmbedder
            from youtu_rag.index.store import ChromaStore
            from langchain_youtu import YoutuRetriever

            store = ChromaStore.open(YoutuEmbedder(MINILM), persist_dir=".youtu_rag")
            retriever = YoutuRetriever(store=store, k=4)
            docs = retriever.invoke("What is masked mean pooling?", k=2)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: ChromaStore
    """The collection to search, with the embedder that built it."""
    k: int = Field(default=4, ge=1)
    """Passages per query; ``invoke(query, k=...)`` overrides it for one call."""
    where: dict[str, Any] | None = None
    """Chroma metadata filter, e.g. ``{"source": "/docs/faq.md"}``."""
    mmr: bool = False
    """Re-rank by maximal marginal relevance for more diverse passages."""
    fetch_k: int | None = None
    """MMR candidates (default ``4 * k``)."""
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)
    """MMR trade-off: 1 is pure relevance, 0 pure diversity."""
    mode: SearchMode = DEFAULT_MODE
    """``hybrid`` (dense and BM25 fused), ``dense`` or ``lexical``; see ``ChromaStore.search``."""

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        where: dict[str, Any] | None = None,
    ) -> list[Document]:
        hits = self.store.search(
            query,
            k=self.k if k is None else k,
            where=self.where if where is None else where,
            mmr=self.mmr,
            fetch_k=self.fetch_k,
            lambda_mult=self.lambda_mult,
            mode=self.mode,
        )
        return [hit_to_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **options: Any
    ) -> list[Document]:
        # The model runs in a worker thread so the event loop stays free; the per-call options
        # (k, where) are the sync method's, which checks them.
        documents: list[Document] = await run_in_executor(
            None,
            self._get_relevant_documents,
            query,
            run_manager=run_manager.get_sync(),
            **options,
        )
        return documents
