"""LangChain integration of youtu-rag: embeddings, a Chroma retriever and a RAG chain."""

from langchain_youtu.chain import create_rag_chain
from langchain_youtu.embeddings import YoutuEmbeddings
from langchain_youtu.reranker import YoutuReranker
from langchain_youtu.retriever import YoutuRetriever

#: ``langchain_huggingface.HuggingFaceEmbeddings`` code moves over by its import line alone:
#: its arguments mean the same here (see ``docs/langchain.md``, "Migrating").
HuggingFaceEmbeddings = YoutuEmbeddings

__all__ = [
    "HuggingFaceEmbeddings",
    "YoutuEmbeddings",
    "YoutuReranker",
    "YoutuRetriever",
    "create_rag_chain",
]
