"""YoutuRetriever: youtu-rag's Chroma store as a LlamaIndex ``BaseRetriever``.

Thin on purpose: embedding, the lexical index, fusion and filtering happen in
:class:`youtu_rag.index.store.ChromaStore`; this class only turns its hits into
``NodeWithScore`` objects whose node ids are the chunk ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from youtu_rag.index.fusion import DEFAULT_MODE, Fusion, SearchMode, check_mode

if TYPE_CHECKING:  # importing the package loads no chromadb until a store is made
    from youtu_rag.index.store import ChromaStore, Hit


def hit_to_node(hit: Hit) -> NodeWithScore:
    """A ``TextNode`` with the chunk's id, text and metadata, and each side's rank and score.

    Args:
        hit: one search result.

    Returns:
        The node with the hit's score.
    """
    ranks = {
        "dense_rank": hit.dense_rank,
        "dense_score": hit.dense_score,
        "lexical_rank": hit.lexical_rank,
        "lexical_score": hit.lexical_score,
    }
    metadata = {**hit.metadata, **{key: value for key, value in ranks.items() if value is not None}}
    return NodeWithScore(
        node=TextNode(id_=hit.id, text=hit.text, metadata=metadata), score=hit.score
    )


class YoutuRetriever(BaseRetriever):
    """Top-``k`` passages from a youtu-rag Chroma collection, best first.

    Example:
        .. code-block:: python

            from youtu_rag import MINILM, YoutuEmbedder
            from youtu_rag.index.store import ChromaStore
            from llama_index.embeddings.youtu import YoutuRetriever

            store = ChromaStore.open(YoutuEmbedder(MINILM), persist_dir=".youtu_rag")
            nodes = YoutuRetriever(store, k=4).retrieve("What is masked mean pooling?")
    """

    def __init__(
        self,
        store: ChromaStore,
        k: int = 4,
        *,
        mode: SearchMode = DEFAULT_MODE,
        where: Mapping[str, Any] | None = None,
        fusion: Fusion | None = None,
        **options: Any,
    ) -> None:
        """Search ``store``.

        Args:
            store: the collection, with the embedder that built it.
            k: passages per query.
            mode: ``hybrid``, ``dense`` or ``lexical`` (see ``ChromaStore.search``).
            where: a Chroma metadata filter.
            fusion: how a hybrid search fuses.
            **options: LlamaIndex's ``BaseRetriever`` options (``callback_manager``, ...).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.store = store
        self.k = k
        self.mode = check_mode(mode)
        self.where = None if where is None else dict(where)
        self.fusion = fusion
        super().__init__(**options)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.store.search(
            query_bundle.query_str, k=self.k, where=self.where, mode=self.mode, fusion=self.fusion
        )
        return [hit_to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # The model runs in a worker thread so the event loop stays free.
        return await asyncio.to_thread(self._retrieve, query_bundle)
