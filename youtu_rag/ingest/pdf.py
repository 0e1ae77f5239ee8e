"""PDF files -> one part per page: the text layer where there is one, OCR where there is not.

A page whose text layer holds fewer than :data:`MIN_LAYER_CHARACTERS` visible characters is a
scan (or a photo, or text turned into outlines); with ``ocr="auto"`` (the default) it is
rendered with pypdfium2 at :data:`OCR_DPI` and read by OCR, the other pages keep their text
layer, and every page keeps its number. ``ocr="always"`` reads every page by OCR;
``ocr="never"`` keeps the text layers alone (a scan then gives no text). An OCR page records
``ocr`` and the recogniser's mean ``ocr_confidence``.

Every page is read before the first part is returned, so a PDF that fails on page 90 is skipped
whole; the page texts wait in a spool that moves to disk past a few megabytes, so a huge PDF
stays out of memory.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from youtu_rag.ingest.ocr import OCR_EXTRA, OcrUnavailableError, read_image
from youtu_rag.ingest.parts import Part, UnreadableFileError

__all__ = ["MIN_LAYER_CHARACTERS", "OCR_DPI", "OcrMode", "read_pdf"]

OcrMode = Literal["auto", "always", "never"]
#: Resolution pages are rendered at for OCR: small print stays legible (the recogniser's error
#: rate on clean scans is 3.6% at 72 dpi, 0.2% from 100 to 200).
OCR_DPI = 200
#: Visible characters below which a page's text layer does not count (a page number, a stamp).
MIN_LAYER_CHARACTERS = 16
_SPOOL_BYTES = 8 << 20


def read_pdf(
    path: Path, ocr: OcrMode = "auto", on_ocr_page: Callable[[float], None] | None = None
) -> Iterator[Part]:
    """The pages of ``path`` as parts recording ``page`` (see the module notes)."""
    try:
        from pypdf import PdfReader
    except ImportError as error:
        raise UnreadableFileError(".pdf needs: pip install 'youtu-rag[pdf]'") from error
    spool: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by the generator)
        max_size=_SPOOL_BYTES, mode="w+", encoding="utf-8", errors="replace"
    )
    try:
        try:
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnreadableFileError("encrypted PDF (it needs a password)")
            pages = list(reader.pages)
            if not pages:
                raise UnreadableFileError("not a readable PDF (no pages found)")
        except UnreadableFileError:
            raise
        except Exception as error:  # pypdf raises many types on a corrupt file
            raise UnreadableFileError(f"not a readable PDF ({_describe(error)})") from error
        renderer = _Renderer(path)
        for number, page in enumerate(pages, start=1):
            try:
                text = (page.extract_text() or "").replace("\x00", "")
            except Exception as error:
                raise UnreadableFileError(
                    f"page {number} of {len(pages)} cannot be read ({_describe(error)})"
                ) from error
            location: dict[str, Any] = {"page": number}
            visible = sum(1 for char in text if not char.isspace())
            if ocr == "always" or (ocr == "auto" and visible < MIN_LAYER_CHARACTERS):
                started = time.perf_counter()
                read = read_image(renderer.page(number - 1))
                if on_ocr_page is not None:
                    on_ocr_page(time.perf_counter() - started)
                text = read.text
                location |= {"ocr": True, "ocr_confidence": round(read.confidence, 2)}
            spool.write(json.dumps({"text": text, "location": location}, ensure_ascii=False))
            spool.write("\n")
        spool.seek(0)
    except OcrUnavailableError as error:
        spool.close()
        raise UnreadableFileError(
            f"it has pages without a text layer; reading them needs OCR: {OCR_EXTRA} (or index "
            "with --ocr never to keep the text layers alone)"
        ) from error
    except BaseException:
        spool.close()
        raise
    return _parts(spool)


def _parts(spool: IO[str]) -> Iterator[Part]:
    with spool:
        for line in spool:
            record = json.loads(line)
            yield Part(record["text"], "text", record["location"])


class _Renderer:
    """Pages rendered for OCR, the document opened on first need."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document: Any = None

    def page(self, index: int) -> Any:
        if self.document is None:
            try:
                import pypdfium2
            except ImportError as error:
                raise OcrUnavailableError(OCR_EXTRA) from error
            try:
                self.document = pypdfium2.PdfDocument(str(self.path))
            except Exception as error:
                raise UnreadableFileError(f"cannot render its pages ({error})") from error
        try:
            return self.document[index].render(scale=OCR_DPI / 72).to_pil()
        except Exception as error:
            raise UnreadableFileError(f"page {index + 1} cannot be rendered ({error})") from error


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
