"""Where an index lives unless told otherwise; importable without chromadb."""

DEFAULT_PERSIST_DIR = ".youtu_rag"
DEFAULT_COLLECTION = "youtu_rag"
