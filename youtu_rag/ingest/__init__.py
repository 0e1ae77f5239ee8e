"""Files -> chunks in a collection: walking folders, reading text, PDF, office and web documents
and tables, OCR of scans and photos, script-aware chunking, the incremental pipeline, and Ray.

Fourth layer: imports :mod:`youtu_rag.model`, :mod:`youtu_rag.backends` and
:mod:`youtu_rag.index` (the store it writes to), never the server, the measurements or the CLI.
:func:`ingest` and its report are importable from here; they load on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from youtu_rag.ingest.pipeline import IngestReport, Skipped, ingest

_PUBLIC = {"IngestReport", "Skipped", "ingest"}
__all__ = ["IngestReport", "Skipped", "ingest"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'youtu_rag.ingest' has no attribute {name!r}")
    return getattr(importlib.import_module("youtu_rag.ingest.pipeline"), name)
