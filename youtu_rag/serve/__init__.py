"""The OpenAI-compatible embeddings server: the app, dynamic batching, metrics, and the helper
that runs it as a child process.

Fourth layer: imports the model, the backends and the index, never the measurements or the CLI.
"""
