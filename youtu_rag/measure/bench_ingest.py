"""``youtu-rag bench ingest FOLDER``: how fast each format is read, and what OCR costs a page.

Reading only (a file -> its parts -> chunks, as ``index`` does), no embedding: the embedding
cost is ``bench encode``'s. Each file is read once, and timed as a whole; pages read by OCR are
timed one by one. A unit is what a format is made of: pages (PDF, images), slides, sheets, or
the file itself (text, Word, web pages, CSV).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from youtu_rag.backends.protocol import Embedder
from youtu_rag.ingest.chunking import make_chunker
from youtu_rag.ingest.formats import open_parts
from youtu_rag.ingest.parts import Part, UnreadableFileError
from youtu_rag.ingest.pdf import OcrMode
from youtu_rag.ingest.pipeline import plan_run
from youtu_rag.measure.bench_serve import machine

__all__ = ["bench_ingest"]

_UNITS = ("page", "slide", "sheet")


def bench_ingest(embedder: Embedder, folder: Path, ocr: OcrMode = "auto") -> dict[str, Any]:
    """Per format: files, units, seconds, units and megabytes per second, chunks; OCR pages
    and seconds per OCR page; files skipped. JSON-ready."""
    chunker = make_chunker(embedder)
    plan = plan_run([folder])
    rows: dict[str, dict[str, Any]] = {}
    ocr_seconds: list[float] = []
    for path in plan.files:
        suffix = path.suffix.lower()
        row = rows.setdefault(
            suffix,
            {"files": 0, "units": 0, "bytes": 0, "seconds": 0.0, "chunks": 0, "skipped": 0},
        )
        started = time.perf_counter()
        try:
            parts = list(open_parts(path, ocr=ocr, on_ocr_page=ocr_seconds.append))
            chunks = sum(1 for _ in chunker.split_parts(parts))
        except UnreadableFileError:
            row["skipped"] += 1
            continue
        row["seconds"] += time.perf_counter() - started
        row["files"] += 1
        row["units"] += _units(parts)
        row["bytes"] += path.stat().st_size
        row["chunks"] += chunks
    for row in rows.values():
        seconds = max(row["seconds"], 1e-9)
        row["units_per_s"] = row["units"] / seconds
        row["mb_per_s"] = row["bytes"] / 1e6 / seconds
    return {
        "folder": str(folder),
        "ocr": ocr,
        "machine": machine(),
        "formats": dict(sorted(rows.items())),
        "ocr_pages": len(ocr_seconds),
        "ocr_seconds_per_page": sum(ocr_seconds) / len(ocr_seconds) if ocr_seconds else None,
        "skipped_before_reading": len(plan.skipped),
        "unsupported": plan.unsupported,
    }


def _units(parts: Iterable[Part]) -> int:
    """Distinct pages, slides or sheets among the parts; 1 for a file that has none."""
    seen = {(key, part.location[key]) for part in parts for key in _UNITS if key in part.location}
    return len(seen) or 1
