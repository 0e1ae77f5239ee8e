"""From files to answers: reading and walking files, chunking, ingest, the Chroma store and its
guard, the Chroma embedding function, Ray scale-out and the RAG prompt.

Third layer: imports :mod:`youtu_rag.model` and :mod:`youtu_rag.backends`, never the server,
the measurements or the CLI.
"""
