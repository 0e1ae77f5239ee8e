"""A text file -> its text, as a stream of segments of bounded size.

Text files must be UTF-8, or UTF-16/UTF-32 with a byte-order mark; anything else is refused with
the offending byte's offset rather than guessed at. A guess (Latin-1? cp1252? Shift-JIS?) that
is wrong stores mojibake that no search ever finds, and replacement characters lose the text
outright; a refusal names the file and the fix (convert it to UTF-8). A file with NUL bytes, or
mostly control characters, is binary whatever its name says.

A whole file is checked before its first segment is returned, so a file that cannot be decoded
or parsed is skipped whole, never half indexed. Both passes read in fixed-size blocks: memory
does not grow with the file.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from youtu_rag.ingest.parts import UnreadableFileError

__all__ = [
    "PAGE_BREAK",
    "SEGMENT_CHARS",
    "TEXT_SUFFIXES",
    "UnreadableFileError",
    "open_segments",
    "read_text",
]

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})

#: Characters of text handed to the splitter at once. Segments are cut at a paragraph break (else
#: a line break, else a space) in their second half; chunks never span two segments.
SEGMENT_CHARS = 1 << 18
_BLOCK_BYTES = 1 << 16
#: Between two pages of a PDF's text (a form feed, as ``pdftotext`` writes): chunks keep their page.
PAGE_BREAK = "\f"
# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters that plain text does contain.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b\x08")
_MAX_CONTROL_SHARE = 0.05


def open_segments(path: Path) -> Iterator[str]:
    """The text of ``path`` as consecutive segments of at most about :data:`SEGMENT_CHARS`.

    Raises :class:`UnreadableFileError` before returning if the file is binary or not
    decodable; the iterator raises it too if the file changes while it is read.
    """
    try:
        if path.stat().st_size == 0:
            return iter(())
        encoding, skip = _sniff(path)
        for _ in _decoded_blocks(path, encoding, skip):
            pass  # the whole file decodes: only now hand out its text
        return _segments(_decoded_blocks(path, encoding, skip), SEGMENT_CHARS)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error)) from error


def read_text(path: Path) -> str:
    """The whole text of ``path`` (see :func:`open_segments`); for files known to be small."""
    return "".join(open_segments(path))


def _os_reason(error: OSError) -> str:
    return f"cannot read it ({error.strerror or type(error).__name__})"


def _sniff(path: Path) -> tuple[str, int]:
    """(encoding, length of its byte-order mark) of a text file, or the reason it is binary."""
    with path.open("rb") as handle:
        head = handle.read(_BLOCK_BYTES)
    for mark, encoding in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return encoding, len(mark)
    if b"\x00" in head:
        raise UnreadableFileError("binary file (it contains NUL bytes)")
    return "utf-8", 0


def _decoded_blocks(path: Path, encoding: str, skip: int) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = skip
    first = True
    try:
        with path.open("rb") as handle:
            handle.seek(skip)
            while True:
                block = handle.read(_BLOCK_BYTES)
                try:
                    text = decoder.decode(block, final=not block)
                except UnicodeDecodeError as error:
                    raise UnreadableFileError(_decode_reason(encoding, error, offset)) from error
                if "\x00" in text:
                    raise UnreadableFileError("binary file (it contains NUL characters)")
                if first:
                    _refuse_control_characters(text)
                    first = False
                if text:
                    yield text
                if not block:
                    return
                offset += len(block)
    except OSError as error:
        raise UnreadableFileError(_os_reason(error)) from error


def _decode_reason(encoding: str, error: UnicodeDecodeError, offset: int) -> str:
    position = offset + error.start
    byte = error.object[error.start : error.start + 1].hex() or "end of file"
    name = "UTF-8" if encoding == "utf-8" else encoding.upper()
    hint = "; convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)" if encoding == "utf-8" else ""
    return f"not valid {name} text (byte 0x{byte} at offset {position}){hint}"


def _refuse_control_characters(text: str) -> None:
    sample = text[:_BLOCK_BYTES]
    controls = sum(
        1 for char in sample if char not in _TEXT_CONTROLS and unicodedata.category(char) == "Cc"
    )
    if sample and controls > _MAX_CONTROL_SHARE * len(sample):
        raise UnreadableFileError(
            f"binary file ({controls} of its first {len(sample)} characters are control codes)"
        )


def _segments(blocks: Iterable[str], size: int) -> Iterator[str]:
    """Regroup text blocks into segments of at most ``size`` characters, cut at a break."""
    buffer = ""
    for block in blocks:
        buffer += block
        while len(buffer) >= size:
            cut = _cut(buffer, size)
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer


def _cut(text: str, size: int) -> int:
    for separator in ("\n\n", "\n", " "):
        found = text.rfind(separator, size // 2, size)
        if found != -1:
            return found + len(separator)
    return size
