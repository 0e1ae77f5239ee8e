"""Spreadsheets and delimited text -> table parts whose every chunk repeats the header row.

A chunk of rows 40 to 60 of a ledger means nothing without its column names, so a table part
carries its header (the sheet's name as a heading, then the first non-empty row as Markdown
column names) apart from its rows, and the chunker starts every chunk with it.

``.xlsx`` and ``.xlsm`` are read with openpyxl (extra ``documents``) in read-only mode with the
values Excel cached: formulas are not evaluated and macros never run. Each sheet is a part that
records its name (``sheet``). A value is written as the sheet shows it: dates and times in the
cell's date format, numbers with its decimals, thousands separators, percent sign and literal
prefixes and suffixes (currency), the first section of a multi-section format; what the
formats cannot say (colours, conditions) is left out. ``.csv`` and ``.tsv`` follow RFC 4180
(quoted fields may hold the delimiter, quotes and line breaks) and the text files' encoding
rules (UTF-8, or a byte-order mark).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from youtu_rag.ingest.archives import check_office_archive
from youtu_rag.ingest.office import DOCUMENTS_EXTRA, table_markdown
from youtu_rag.ingest.parts import Part, UnreadableFileError

__all__ = ["displayed", "read_delimited", "read_workbook"]

_DATE_TOKENS = re.compile(
    r'"[^"]*"|\\.|yyyy|yy|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|a/p|[^"\\ymdhsa]+|.',
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[0#?][0#?,]*(?:\.([0#?]+))?")
#: Rows of delimited text handed to the chunker at once.
ROWS_PER_PART = 1000


def read_workbook(path: Path) -> Iterator[Part]:
    """One table part per sheet with values (see the module notes)."""
    check_office_archive(path)
    try:
        import openpyxl
    except ImportError as error:
        raise UnreadableFileError(f"{path.suffix.lower()} needs: {DOCUMENTS_EXTRA}") from error
    try:
        workbook = openpyxl.load_workbook(
            path, read_only=True, data_only=True, keep_vba=False, keep_links=False
        )
        sheets = [
            (sheet.title, [[displayed(cell) for cell in row] for row in sheet.iter_rows()])
            for sheet in workbook.worksheets
        ]
        workbook.close()
    except Exception as error:  # openpyxl raises many types on a malformed file
        raise UnreadableFileError(f"not a readable workbook ({_describe(error)})") from error
    for title, rows in sheets:
        part = table_part(rows, title, {"sheet": title})
        if part is not None:
            yield part


def read_delimited(segments: Iterable[str], delimiter: str) -> Iterator[Part]:
    """Delimited text (``,`` for CSV, ``\t`` for TSV) as table parts of up to
    :data:`ROWS_PER_PART` rows, all with the first row as their header; streamed."""
    reader = csv.reader(_lines(segments), delimiter=delimiter, strict=True)
    header = ""
    width = 0
    batch: list[list[str]] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if not header:
                width = len(row)
                part = table_part([row], "", {})
                header = part.header if part is not None else ""
                continue
            batch.append(row)
            if len(batch) >= ROWS_PER_PART:
                yield _rows_part(batch, width, header)
                batch = []
    except csv.Error as error:
        raise UnreadableFileError(
            f"not valid delimited text (line {reader.line_num}: {error})"
        ) from error
    if batch or header:
        yield _rows_part(batch, width, header)


def _lines(segments: Iterable[str]) -> Iterator[str]:
    """Whole lines (ends kept) from segments that may end mid-line."""
    carry = ""
    for segment in segments:
        lines = (carry + segment).splitlines(keepends=True)
        carry = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        yield from lines
    if carry:
        yield carry


def _rows_part(rows: list[list[str]], width: int, header: str) -> Part:
    cells = [[*row, *[""] * (width - len(row))] for row in rows]
    lines = table_markdown([[""] * width, *cells])[2:]
    return Part("\n".join(lines) + ("\n" if lines else ""), "table", {}, header)


def table_part(rows: Iterable[list[str]], title: str, location: dict[str, Any]) -> Part | None:
    """Rows as a table part: empty rows dropped, empty trailing columns trimmed, the first row
    (and ``title``, as a heading) in the header; None when no cell has text."""
    kept = [row for row in rows if any(cell.strip() for cell in row)]
    if not kept:
        return None
    width = max(
        max((i + 1 for i, cell in enumerate(row) if cell.strip()), default=0) for row in kept
    )
    cells = [[*row[:width], *[""] * (width - len(row))] for row in kept]
    lines = table_markdown(cells)
    heading = f"## {title}\n\n" if title else ""
    header = heading + "\n".join(lines[:2])
    body = "\n".join(lines[2:])
    return Part(body + "\n" if body else "", "table", location, header)


def displayed(cell: Any) -> str:
    """A cell's value as Excel shows it under its number format (see the module notes)."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    number_format = str(getattr(cell, "number_format", "General") or "General")
    section = _first_section(number_format)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return _date(value, section)
    if isinstance(value, int | float):
        return _number(float(value), section)
    return str(value)


def _first_section(number_format: str) -> str:
    """The format for positive numbers: its first ``;`` section, colours and conditions out."""
    section = re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', number_format)[0]
    return re.sub(r"\[[^\]]*\]", "", section)


def _date(value: dt.datetime | dt.date | dt.time, section: str) -> str:
    if section.lower() in ("general", "@", ""):
        if isinstance(value, dt.datetime) and value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    stamp = (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.combine(value, dt.time(0))
        if isinstance(value, dt.date)
        else dt.datetime.combine(dt.date(1900, 1, 1), value)
    )
    tokens = _DATE_TOKENS.findall(section)
    twelve = any(token.lower() in ("am/pm", "a/p") for token in tokens)
    out: list[str] = []
    for index, token in enumerate(tokens):
        lower = token.lower()
        after_hour = any(t.lower() in ("h", "hh") for t in tokens[:index])
        before_second = any(t.lower() in ("s", "ss") for t in tokens[index + 1 :])
        minutes = lower in ("m", "mm") and (after_hour or before_second)
        out.append(_date_token(stamp, token, lower, minutes, twelve))
    return "".join(out)


def _date_token(stamp: dt.datetime, token: str, lower: str, minutes: bool, twelve: bool) -> str:
    hour = stamp.hour % 12 or 12 if twelve else stamp.hour
    table = {
        "yyyy": f"{stamp.year:04d}",
        "yy": f"{stamp.year % 100:02d}",
        "mmmm": stamp.strftime("%B"),
        "mmm": stamp.strftime("%b"),
        "mm": f"{stamp.minute:02d}" if minutes else f"{stamp.month:02d}",
        "m": str(stamp.minute) if minutes else str(stamp.month),
        "dddd": stamp.strftime("%A"),
        "ddd": stamp.strftime("%a"),
        "dd": f"{stamp.day:02d}",
        "d": str(stamp.day),
        "hh": f"{hour:02d}",
        "h": str(hour),
        "ss": f"{stamp.second:02d}",
        "s": str(stamp.second),
        "am/pm": "AM" if stamp.hour < 12 else "PM",
        "a/p": "A" if stamp.hour < 12 else "P",
    }
    if lower in table:
        return table[lower]
    if token.startswith('"'):
        return token[1:-1]
    if token.startswith("\\"):
        return token[1:]
    return token


def _number(value: float, section: str) -> str:
    if section.lower() in ("general", "@", ""):
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.11g}"
    percent = "%" in section
    shown = value * 100 if percent else value
    match = _NUMBER.search(section)
    if match is None:
        return f"{value:.11g}"
    decimals = len(match.group(1) or "")
    grouped = "," in match.group(0)
    digits = f"{abs(shown):,.{decimals}f}" if grouped else f"{abs(shown):.{decimals}f}"
    prefix = _literal(section[: match.start()])
    suffix = _literal(section[match.end() :])
    sign = "-" if shown < 0 and round(abs(shown), decimals) != 0 else ""
    return f"{sign}{prefix}{digits}{suffix}"


def _literal(text: str) -> str:
    """The literal text of a format's prefix or suffix: quoted strings and escaped characters
    kept, padding (``_x``, ``*x``) dropped."""
    text = re.sub(r"[_*].", "", text)
    return re.sub(r'"([^"]*)"|\\(.)', lambda match: match.group(1) or match.group(2), text)


def _describe(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
