"""LlamaIndex integration of youtu-rag: ``YoutuEmbedding`` and ``YoutuRetriever``."""

from llama_index.embeddings.youtu.base import YoutuEmbedding
from llama_index.embeddings.youtu.retriever import YoutuRetriever

#: ``llama_index.embeddings.huggingface.HuggingFaceEmbedding`` code moves over by its import
#: line alone (see ``docs/llamaindex.md``, "Migrating").
HuggingFaceEmbedding = YoutuEmbedding

__all__ = ["HuggingFaceEmbedding", "YoutuEmbedding", "YoutuRetriever"]
