"""LlamaIndex integration of youtu-rag: ``YoutuEmbedding`` and ``YoutuRetriever``."""

from llama_index.embeddings.youtu.base import YoutuEmbedding
from llama_index.embeddings.youtu.retriever import YoutuRetriever

__all__ = ["YoutuEmbedding", "YoutuRetriever"]
