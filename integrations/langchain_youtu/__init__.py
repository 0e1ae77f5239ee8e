"""LangChain integration of youtu-rag: embeddings, a Chroma retriever and a RAG chain."""

from langchain_youtu.chain import create_rag_chain
from langchain_youtu.embeddings import YoutuEmbeddings
from langchain_youtu.reranker import YoutuReranker
from langchain_youtu.retriever import YoutuRetriever

__all__ = ["YoutuEmbeddings", "YoutuReranker", "YoutuRetriever", "create_rag_chain"]
