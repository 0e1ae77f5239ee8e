"""Names and sizes every layer (and the CLI's help) needs without loading torch."""

YOUTU_EMBEDDING = "tencent/Youtu-Embedding"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: Texts per forward pass.
DEFAULT_BATCH_SIZE = 32
#: Padded tokens per forward pass: bounds activation memory whatever the batch size.
DEFAULT_MAX_BATCH_TOKENS = 16384
