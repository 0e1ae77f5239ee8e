"""youtu-rag: Youtu-Embedding as a drop-in embedding and retrieval component for RAG."""

from youtu_rag.embedder import YoutuEmbedder
from youtu_rag.embedding_function import YoutuEmbeddingFunction
from youtu_rag.http_embedder import HttpEmbedder
from youtu_rag.loading import clear_backbone_cache
from youtu_rag.profiles import MINILM, YOUTU_EMBEDDING, ModelProfile, get_profile, resolve_profile
from youtu_rag.settings import EmbedderSettings
from youtu_rag.tencent_cloud import TencentCloudEmbedder, TencentCloudError

__all__ = [
    "MINILM",
    "YOUTU_EMBEDDING",
    "EmbedderSettings",
    "HttpEmbedder",
    "ModelProfile",
    "TencentCloudEmbedder",
    "TencentCloudError",
    "YoutuEmbedder",
    "YoutuEmbeddingFunction",
    "clear_backbone_cache",
    "get_profile",
    "resolve_profile",
]
