"""From files to answers: reading and walking files, chunking, ingest, the Chroma store and its
guard, the Chroma embedding function, Ray scale-out and the RAG prompt."""
