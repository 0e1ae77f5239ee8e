"""Scans and photos -> text, offline, with RapidOCR (PP-OCRv4, Chinese + English, whose ONNX
models ship inside the ``rapidocr-onnxruntime`` wheel; extra ``ocr``).

What the recogniser gets wrong, and what is done about it:

- **English words glued together** ("TheFrankfurtdatacenter"): whether the recogniser keeps a
  space depends on how the detected line box frames the text, which changes with the image's
  scale in ways no single scale gets right. A line with a long run of Latin letters is read
  again from the page around it (one line height of margin) at 1.5x, 2x and 3x, and every
  space that a reading with the same letters found is put back (a space is seldom invented,
  often dropped). Those small crops are detected at their own size, not enlarged to the
  detector's usual minimum, which keeps the second look at about a second a page.
- **Reading order**: lines top to bottom, and left to right within a row (boxes that overlap
  vertically); a vertical gap larger than 1.5 lines starts a new paragraph.
- **A Chinese full stop read as a degree sign** at the end of a line ("日°"): put back.

Each page's text comes with the recogniser's mean confidence (weighted by characters). The
engine is loaded once per process and used by one thread at a time; ONNX Runtime spreads each
page over all cores. Images are checked for size before they are decoded: a decompression bomb
is refused, not decoded.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MAX_PIXELS", "OCR_EXTRA", "OcrPage", "OcrUnavailableError", "read_image"]

OCR_EXTRA = "pip install 'youtu-rag[ocr]'"
#: Pixels an image may have (a 600 dpi A3 scan has 70 million); beyond, it is refused before
#: it is decoded.
MAX_PIXELS = 120_000_000
#: The longest side a page is read at; larger images are scaled down first.
_MAX_SIDE = 4000
_SCALES = (1.5, 2.0, 3.0)
#: A run of this many Latin letters without a space may be words glued together.
_GLUED = re.compile(r"[A-Za-z]{10,}")
_CJK = r"[\u3400-\u9fff\uf900-\ufaff]"
_DEGREE_STOP = re.compile(rf"(?<={_CJK})°$")


class OcrUnavailableError(ImportError):
    """RapidOCR is not installed."""


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float
    top: float
    bottom: float
    left: float
    right: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(frozen=True)
class OcrPage:
    """A page's text in reading order, and the recogniser's mean confidence (0 for no text)."""

    text: str
    confidence: float


_engines: tuple[Any, Any] | None = None
_engine_lock = threading.Lock()


def _rapidocr() -> tuple[Any, Any]:
    """(the page engine, the engine that reads crops at their own size), loaded once."""
    global _engines
    with _engine_lock:
        if _engines is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as error:
                raise OcrUnavailableError(f"OCR needs RapidOCR: {OCR_EXTRA}") from error
            _engines = (
                RapidOCR(max_side_len=_MAX_SIDE * 2),
                RapidOCR(max_side_len=_MAX_SIDE * 2, det_limit_type="max", det_limit_side_len=960),
            )
        return _engines


def read_image(image: Image) -> OcrPage:
    """The text of one page image (see the module notes).

    Raises:
        OcrUnavailableError: the ``ocr`` extra is not installed.
    """
    engine, crops = _rapidocr()
    image = _bounded(image.convert("RGB"))
    with _engine_lock:
        lines = _lines(engine, image)
        lines = [_respaced(crops, image, line) for line in lines]
    return _page(lines)


def _bounded(image: Image) -> Image:
    longest = max(image.size)
    if longest <= _MAX_SIDE:
        return image
    factor = _MAX_SIDE / longest
    return image.resize((round(image.width * factor), round(image.height * factor)))


def _lines(engine: Any, image: Image, scale: float = 1.0) -> list[OcrLine]:
    result, _ = engine(np.asarray(image))
    lines = []
    for box, text, confidence in result or []:
        ys = [point[1] / scale for point in box]
        xs = [point[0] / scale for point in box]
        lines.append(OcrLine(str(text), float(confidence), min(ys), max(ys), min(xs), max(xs)))
    return lines


def _respaced(engine: Any, image: Image, line: OcrLine) -> OcrLine:
    """``line`` with the spaces a reading at a larger scale found, where it looks glued."""
    if not _GLUED.search(line.text):
        return line
    height = line.bottom - line.top
    top = max(0, int(line.top - height))
    left = max(0, int(line.left - height))
    band = image.crop(
        (
            left,
            top,
            min(image.width, int(line.right + height)),
            min(image.height, int(line.bottom + height)),
        )
    )
    readings = [line.text]
    for scale in _SCALES:
        scaled = band.resize((round(band.width * scale), round(band.height * scale)))
        for other in _lines(engine, scaled, scale):
            if abs(other.middle + top - line.middle) < height / 2:
                readings.append(other.text)
    return dataclasses.replace(line, text=merge_spaces(line.text, readings))


def merge_spaces(text: str, readings: Sequence[str]) -> str:
    """``text`` with a space wherever one of ``readings`` with the same characters (spaces
    aside) has one."""
    letters = text.replace(" ", "")
    gaps: set[int] = set()
    for reading in readings:
        if reading.replace(" ", "") != letters:
            continue
        position = 0
        for char in reading:
            if char == " ":
                gaps.add(position)
            else:
                position += 1
    return "".join(
        (" " if index in gaps and index else "") + char for index, char in enumerate(letters)
    )


def _page(lines: list[OcrLine]) -> OcrPage:
    """Lines in reading order: rows top to bottom (lines overlapping vertically share a row),
    left to right within a row, a blank line where the gap exceeds 1.5 lines."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda item: (item.middle, item.left)):
        row = rows[-1] if rows else None
        if row and line.top < row[0].bottom and line.middle > row[0].top:
            row.append(line)
        else:
            rows.append([line])
    out: list[str] = []
    previous: OcrLine | None = None
    for row in rows:
        row.sort(key=lambda item: item.left)
        first = row[0]
        if previous is not None and out:
            height = max(previous.bottom - previous.top, 1.0)
            out.append("\n\n" if first.top - previous.bottom > 1.5 * height else "\n")
        out.append(" ".join(_DEGREE_STOP.sub("。", line.text) for line in row))
        previous = first
    weight = sum(len(line.text) for line in lines)
    confidence = sum(line.confidence * len(line.text) for line in lines) / weight if weight else 0.0
    return OcrPage("".join(out), confidence)
