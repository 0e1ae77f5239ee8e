"""Which files are read, by which reader, and which extra each needs.

:func:`open_parts` is the one entrance: a file's suffix picks its reader, and the reader turns
the file into :class:`~youtu_rag.ingest.parts.Part`\\ s. Every reader checks the whole file
before the first part is returned (an unreadable file is skipped whole, never half indexed);
plain text and delimited text stream in bounded segments, the other formats are read whole.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

from youtu_rag.ingest.images import IMAGE_SUFFIXES, read_image_file
from youtu_rag.ingest.office import read_docx, read_pptx
from youtu_rag.ingest.parts import DocumentKind, Part, UnreadableFileError
from youtu_rag.ingest.pdf import OcrMode, read_pdf
from youtu_rag.ingest.reading import TEXT_SUFFIXES, open_segments
from youtu_rag.ingest.tables import read_delimited, read_workbook
from youtu_rag.ingest.web import read_html

__all__ = [
    "DELIMITERS",
    "MAX_DOCUMENT_BYTES",
    "SUPPORTED_SUFFIXES",
    "missing_extra",
    "open_parts",
]

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
PDF_SUFFIX = ".pdf"
DELIMITERS = {".csv": ",", ".tsv": "\t"}
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm"})
WEB_SUFFIXES = frozenset({".html", ".htm"})
SUPPORTED_SUFFIXES = frozenset(
    TEXT_SUFFIXES
    | {PDF_SUFFIX, ".docx", ".pptx"}
    | set(DELIMITERS)
    | WORKBOOK_SUFFIXES
    | WEB_SUFFIXES
    | IMAGE_SUFFIXES
)
#: Formats read whole (office, web, images) larger than this are refused: memory stays bounded.
MAX_DOCUMENT_BYTES = 128 << 20

#: Suffix -> (extra, a module it installs).
_EXTRAS: dict[str, tuple[str, str]] = {
    PDF_SUFFIX: ("pdf", "pypdf"),
    ".docx": ("documents", "docx"),
    ".pptx": ("documents", "pptx"),
    **dict.fromkeys(WORKBOOK_SUFFIXES, ("documents", "openpyxl")),
    **dict.fromkeys(WEB_SUFFIXES, ("documents", "trafilatura")),
    **dict.fromkeys(IMAGE_SUFFIXES, ("ocr", "rapidocr_onnxruntime")),
}


def missing_extra(suffix: str) -> str | None:
    """What to install to read files of ``suffix``, None when it is installed."""
    extra = _EXTRAS.get(suffix.lower())
    if extra is None or importlib.util.find_spec(extra[1]) is not None:
        return None
    return f"{suffix.lower()} needs: pip install 'youtu-rag[{extra[0]}]'"


def open_parts(
    path: Path, *, ocr: OcrMode = "auto", on_ocr_page: Callable[[float], None] | None = None
) -> Iterator[Part]:
    """The parts of ``path``, read by the reader of its suffix.

    Args:
        path: the file.
        ocr: ``auto`` (scanned PDF pages and images), ``always`` (every PDF page too) or
            ``never``.
        on_ocr_page: called after each page OCR has read, with the seconds it took.

    Raises:
        UnreadableFileError: before returning, why the file cannot be read.
    """
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as error:
        raise UnreadableFileError(f"cannot read it ({error.strerror})") from error
    if size == 0:
        return iter(())
    if suffix in TEXT_SUFFIXES:
        kind: DocumentKind = "markdown" if suffix in MARKDOWN_SUFFIXES else "text"
        return (Part(segment, kind) for segment in open_segments(path))
    if suffix in DELIMITERS:
        return read_delimited(open_segments(path), DELIMITERS[suffix])
    if suffix == PDF_SUFFIX:
        return read_pdf(path, ocr, on_ocr_page)
    if size > MAX_DOCUMENT_BYTES:
        raise UnreadableFileError(
            f"{size} bytes: {suffix} files are read whole, and at most {MAX_DOCUMENT_BYTES} "
            "bytes are; split it"
        )
    if suffix in IMAGE_SUFFIXES:
        if ocr == "never":
            raise UnreadableFileError("an image: its text can only be read by OCR (--ocr auto)")
        return read_image_file(path, on_ocr_page)
    readers = {".docx": read_docx, ".pptx": read_pptx}
    if suffix in readers:
        return iter(list(readers[suffix](path)))
    if suffix in WORKBOOK_SUFFIXES:
        return iter(list(read_workbook(path)))
    if suffix in WEB_SUFFIXES:
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise UnreadableFileError(f"cannot read it ({error.strerror})") from error
        return iter(list(read_html(raw)))
    raise UnreadableFileError(f"unsupported file type {suffix or '(no suffix)'}")
