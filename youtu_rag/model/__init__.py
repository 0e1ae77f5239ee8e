"""The embedding core: text in, masked-mean-pooled unit vectors out.

Lowest layer: it imports nothing else of youtu-rag. Pooling is pure tensor functions;
instructions and profiles are data; loading resolves a model string once and shares backbones;
``utu`` runs Youtu-Embedding natively on transformers' ``LlamaModel`` with bidirectional
attention; the embedder ties them together.
"""
