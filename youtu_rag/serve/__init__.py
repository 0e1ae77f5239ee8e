"""The OpenAI-compatible embeddings server: the app, dynamic batching, metrics, and the helper
that runs it as a child process."""
