"""Register :class:`~youtu_rag.index.chroma_function.YoutuEmbeddingFunction` with Chroma as soon
as both are imported, without importing chromadb (or torch) ourselves.

Chroma finds a collection's embedding function by name in a registry filled at import time, so
plain Chroma code that reopens a youtu-rag collection needs our class registered. Importing it
eagerly from ``youtu_rag/__init__`` would load chromadb and torch into every ``youtu-rag --help``.
Instead: if chromadb is already imported we register now; otherwise a one-shot import hook
registers right after chromadb finishes importing.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

_FUNCTION_MODULE = "youtu_rag.index.chroma_function"


def _register() -> None:
    importlib.import_module(_FUNCTION_MODULE)


class _AfterChromaImport(importlib.abc.MetaPathFinder):
    """Wraps chromadb's own loader so that our function module is imported after it."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "chromadb":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            _register()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def register_with_chroma() -> None:
    """Make Chroma able to rebuild our embedding function, now or when chromadb is imported."""
    if "chromadb" in sys.modules:
        _register()
    elif not any(isinstance(finder, _AfterChromaImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterChromaImport())
