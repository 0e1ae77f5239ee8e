"""The ``youtu-rag`` command line: one typer app, option groups declared once, a module per
command group (:mod:`.collection`: index/search/ask/shell/info, :mod:`.reembedding`: reembed,
:mod:`.serving`: serve, :mod:`.measuring`: eval/verify/bench). Importing it loads no torch,
transformers, chromadb or Ray.
"""

from youtu_rag.cli import collection, measuring, reembedding, serving
from youtu_rag.cli.app import app

__all__ = ["app", "collection", "measuring", "reembedding", "serving"]
