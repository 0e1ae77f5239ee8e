"""The embedding core, the lowest layer: text in, masked-mean-pooled unit vectors out.

It imports nothing else of youtu-rag. ``pooling`` is pure tensor functions; ``instructions``
and ``profiles`` are data; ``st_config`` reads a checkpoint's sentence-transformers files;
``resolution`` turns a model string into a :class:`~youtu_rag.model.resolution.ResolvedModel`
once per process (the only place a ``config.json`` is read); ``loading`` loads what was resolved
and shares backbones; ``utu`` runs Youtu-Embedding natively on transformers' ``LlamaModel`` with
bidirectional attention; ``tokenization`` is thread-safe; the ``embedder`` ties them together.
"""
