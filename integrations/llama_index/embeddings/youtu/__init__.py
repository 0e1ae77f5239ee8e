"""LlamaIndex integration of youtu-rag: ``YoutuEmbedding``."""

from llama_index.embeddings.youtu.base import YoutuEmbedding

__all__ = ["YoutuEmbedding"]
