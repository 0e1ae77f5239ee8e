"""YoutuRerank: a cross-encoder as LlamaIndex's ``BaseNodePostprocessor``.

Named and shaped as ``SentenceTransformerRerank`` / ``FlagEmbeddingReranker``: it keeps the
``top_n`` nodes best for the query, best first, and sets each node's ``score`` to the
cross-encoder's. The scoring is the core's (``youtu_rag.Reranker``).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from youtu_rag.backends.protocol import TextReranker, reranker_or_model


class YoutuRerank(BaseNodePostprocessor):
    """The ``top_n`` nodes a cross-encoder scores best for the query."""

    model: str | None = Field(default=None, description="Cross-encoder hub id or directory.")
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

    @classmethod
    def class_name(cls) -> str:
        return "YoutuRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("YoutuRerank needs the query (query_bundle or query_str)")
        if not nodes:
            return []
        texts = [node.node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes]
        ranked = self._reranker.rank(query_bundle.query_str, texts, self.top_n)
        return [NodeWithScore(node=nodes[index].node, score=score) for index, score in ranked]
