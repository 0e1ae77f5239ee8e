"""Where an index lives unless told otherwise, and what a collection may be called; importable
without chromadb."""

import re

DEFAULT_PERSIST_DIR = ".youtu_rag"
DEFAULT_COLLECTION = "youtu_rag"
#: First-stage hits a reranker reads per query when none is said: enough to lift a passage
#: ranked 20th to the top, few enough that a CPU cross-encoder answers in about a second.
DEFAULT_CANDIDATES = 20

_COLLECTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]")


def check_collection_name(name: str) -> str:
    """Chroma's rule for a collection name, checked before a database is made, so a name Chroma
    would refuse leaves no empty ``chroma.sqlite3`` behind.

    Raises:
        ValueError: naming the rule (3-512 characters from ``[a-zA-Z0-9._-]``, starting and
            ending with a letter or digit).
    """
    if not _COLLECTION_NAME.fullmatch(name):
        raise ValueError(
            f"collection name {name!r} is not valid: use 3-512 characters from a-z, A-Z, 0-9, "
            "'.', '_' and '-', starting and ending with a letter or digit"
        )
    return name
