"""Image files -> text by OCR, one part per frame (a multi-page TIFF has several).

An image's header says its size before any pixel is decoded: one beyond
:data:`~youtu_rag.ingest.ocr.MAX_PIXELS` (a decompression bomb: a few kilobytes of PNG that
inflate to gigabytes) is refused there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from youtu_rag.ingest.ocr import MAX_PIXELS, OCR_EXTRA, OcrUnavailableError, read_image
from youtu_rag.ingest.parts import Part, UnreadableFileError

__all__ = ["IMAGE_SUFFIXES", "read_image_file"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})


def read_image_file(path: Path, on_page: Callable[[float], None] | None = None) -> Iterator[Part]:
    """The text OCR reads in each frame of the image, recording ``page`` (from 1), ``ocr`` and
    the recogniser's mean ``ocr_confidence``; every frame is read before the first part is
    returned."""
    try:
        from PIL import Image, ImageSequence
    except ImportError as error:
        raise UnreadableFileError(f"{path.suffix.lower()} needs: {OCR_EXTRA}") from error
    parts: list[Part] = []
    try:
        with Image.open(path) as image:
            width, height = image.size
            frames = getattr(image, "n_frames", 1)
            if width * height * frames > MAX_PIXELS:
                raise UnreadableFileError(
                    f"decompression bomb: {width} x {height} pixels x {frames} frames (at most "
                    f"{MAX_PIXELS} pixels)"
                )
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                started = time.perf_counter()
                page = read_image(frame)
                if on_page is not None:
                    on_page(time.perf_counter() - started)
                if page.text.strip():
                    confidence = round(page.confidence, 2)  # a stable id across runs
                    location = {"page": number, "ocr": True, "ocr_confidence": confidence}
                    parts.append(Part(page.text, "text", location))
    except (UnreadableFileError, OcrUnavailableError) as error:
        raise UnreadableFileError(str(error)) from error
    except Image.DecompressionBombError as error:  # Pillow's own check, past twice its limit
        raise UnreadableFileError(f"decompression bomb: {error}") from error
    except Exception as error:  # Pillow raises many types on a damaged image
        raise UnreadableFileError(f"not a readable image ({error})") from error
    return iter(parts)
