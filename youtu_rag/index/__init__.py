"""A collection and what answers from it: the Chroma store and its guard, the Chroma embedding
function, the lexical index (its one owner: in step, search, repair), fusion and the RAG prompt.

Third layer: imports :mod:`youtu_rag.model` and :mod:`youtu_rag.backends`, never ingestion, the
server, the measurements or the CLI.
"""
