"""Word and PowerPoint files -> Markdown parts, with python-docx and python-pptx (extra
``documents``).

Both write Markdown so that the chunker's section logic does the rest: a Word heading (by its
style's outline level) becomes a Markdown heading and so the chunks' heading path; list items
become ``-`` items; a table becomes a Markdown table. A slide is one part that records its
number (``slide``), titled by its title placeholder, with its body text, its tables and its
speaker notes. Headers and footers, repeated on every page of a Word document, are kept once,
at the end. Archives are checked first (:mod:`youtu_rag.ingest.archives`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from youtu_rag.ingest.archives import check_office_archive
from youtu_rag.ingest.parts import Part, UnreadableFileError

__all__ = ["DOCUMENTS_EXTRA", "read_docx", "read_pptx", "table_markdown"]

DOCUMENTS_EXTRA = "pip install 'youtu-rag[documents]'"
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)


def table_markdown(rows: Iterable[Iterable[str]]) -> list[str]:
    """Rows of cells as Markdown table lines, the first row as the header; pipes and line
    breaks inside a cell are escaped so a cell stays one cell."""
    lines: list[str] = []
    for number, row in enumerate(rows):
        cells = [_cell(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
        if number == 0:
            lines.append("|" + "---|" * len(cells))
    return lines


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def read_docx(path: Path) -> Iterator[Part]:
    """The document as one Markdown part (see the module notes)."""
    check_office_archive(path)
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError as error:
        raise UnreadableFileError(f".docx needs: {DOCUMENTS_EXTRA}") from error
    try:
        document = docx.Document(str(path))
        lines: list[str] = []
        for block in document.element.body.iterchildren():
            tag = block.tag.rsplit("}", 1)[-1]
            if tag == "p":
                lines.append(_paragraph(Paragraph(block, document)))
            elif tag == "tbl":
                table = Table(block, document)
                lines.extend(["", *table_markdown(_rows(table)), ""])
        extras = _headers_and_footers(document)
    except UnreadableFileError:
        raise
    except Exception as error:  # python-docx raises many types on a malformed file
        raise UnreadableFileError(f"not a readable Word document ({_describe(error)})") from error
    if extras:
        lines += ["", *extras]
    text = "\n".join(lines).strip()
    if text:
        yield Part(text + "\n", "markdown")


def _paragraph(paragraph: Any) -> str:
    text: str = paragraph.text.strip()
    if not text:
        return ""
    style = paragraph.style.name if paragraph.style is not None else ""
    level = _heading_level(paragraph, style)
    if level:
        return f"\n{'#' * min(level, 6)} {' '.join(text.split())}\n"
    numbered = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if numbered or style.lower().startswith("list"):
        return f"- {text}"
    return text + "\n"


def _heading_level(paragraph: Any, style: str) -> int:
    if style.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(style.strip())
    if match:
        return int(match.group(1))
    outline = paragraph._p.pPr.outlineLvl if paragraph._p.pPr is not None else None
    if outline is not None and outline.val is not None and int(outline.val) < 9:
        return int(outline.val) + 1
    return 0


def _rows(table: Any) -> Iterator[list[str]]:
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:  # a merged cell is repeated: keep it once
            if cell._tc is not previous:
                cells.append(cell.text)
            previous = cell._tc
        yield cells


def _headers_and_footers(document: Any) -> list[str]:
    seen: list[str] = []
    for section in document.sections:
        for part in (section.header, section.footer):
            if part is None or (part.is_linked_to_previous and seen):
                continue
            text = "\n".join(p.text.strip() for p in part.paragraphs if p.text.strip())
            if text and text not in seen:
                seen.append(text)
    return seen


def read_pptx(path: Path) -> Iterator[Part]:
    """One Markdown part per slide that has text, recording ``slide`` (from 1)."""
    check_office_archive(path)
    try:
        from pptx import Presentation
    except ImportError as error:
        raise UnreadableFileError(f".pptx needs: {DOCUMENTS_EXTRA}") from error
    try:
        slides = [_slide(slide) for slide in Presentation(str(path)).slides]
    except Exception as error:
        raise UnreadableFileError(f"not a readable PowerPoint file ({_describe(error)})") from error
    for number, text in enumerate(slides, start=1):
        if text.strip():
            yield Part(text, "markdown", {"slide": number})


def _slide(slide: Any) -> str:
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text.split()) if title_shape is not None else ""
    lines = [f"# {title}", ""] if title else []
    for shape in _shapes(slide.shapes):
        if shape is title_shape:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            rows = ([cell.text for cell in row.cells] for row in shape.table.rows)
            lines += ["", *table_markdown(rows), ""]
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            for paragraph in shape.text_frame.paragraphs:
                text = "".join(run.text for run in paragraph.runs).strip()
                if text:
                    lines.append(("- " if paragraph.level else "") + text)
            lines.append("")
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            lines += ["", "Notes:", notes.text.strip()]
    return "\n".join(lines).strip() + "\n"


def _shapes(shapes: Any) -> Iterator[Any]:
    """Shapes in reading order (top, then left), group shapes opened."""
    ordered = sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))
    for shape in ordered:
        if shape.shape_type == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _describe(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
