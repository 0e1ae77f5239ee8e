"""LlamaIndex integration of youtu-rag's reranker: ``YoutuRerank``."""

from llama_index.postprocessor.youtu_rerank.base import YoutuRerank

__all__ = ["YoutuRerank"]
