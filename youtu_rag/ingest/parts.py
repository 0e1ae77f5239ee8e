"""What a reader hands the chunker: a document's text in located parts.

Every reader (plain text, PDF pages, a converter of office or web documents, OCR) turns a file
into :class:`Part`\\ s; the chunker turns parts into chunks. A part says how its text is built
(``kind``), where in the file it comes from (``location``: page, slide, sheet, whether OCR read
it), and, for a table, the header rows every chunk of it repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: ``markdown`` is cut by section, ``pdf`` by page (form feeds), ``table`` by rows under a
#: repeated header, ``text`` by the splitter alone.
DocumentKind = Literal["text", "markdown", "pdf", "table"]
#: What Chroma can store in a chunk's metadata.
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Part:
    """A located piece of a document."""

    text: str
    kind: DocumentKind = "text"
    location: Mapping[str, Scalar] = field(default_factory=dict)
    """Recorded in each chunk's metadata: ``page``, ``slide``, ``sheet``, ``ocr``..."""
    header: str = ""
    """For a table: the lines each of its chunks begins with (title and column names)."""


class UnreadableFileError(Exception):
    """A file that cannot be read, decoded or parsed; the message says why, without the path."""
