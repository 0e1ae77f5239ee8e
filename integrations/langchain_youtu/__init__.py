"""LangChain integration of youtu-rag: embeddings, a Chroma retriever and a RAG chain."""

from langchain_youtu.embeddings import YoutuEmbeddings

__all__ = ["YoutuEmbeddings"]
