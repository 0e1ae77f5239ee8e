"""``python -m youtu_rag``: the ``youtu-rag`` command, for when its script is not on PATH."""

from youtu_rag.cli import app

app()
