"""Saved web pages -> the main content as Markdown, with trafilatura (extra ``documents``).

A saved page is mostly not its content: navigation, cookie banners, sidebars, scripts, related
links and footers would be indexed as often as the page is saved, and found for every query
about a menu item. trafilatura keeps the main content (headings as Markdown headings, so the
chunks get heading paths; tables as Markdown tables; entities decoded) and drops the rest. It
parses the file it is given and fetches nothing: remote images, iframes and scripts stay
unfetched URLs. The page must be UTF-8 or carry a byte-order mark, as text files do; a
``<meta charset>`` naming another encoding is honoured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from youtu_rag.ingest.office import DOCUMENTS_EXTRA
from youtu_rag.ingest.parts import Part, UnreadableFileError

__all__ = ["read_html"]

_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def html_text(raw: bytes) -> str:
    """The page's markup as text, in the encoding its byte-order mark or ``<meta charset>``
    names (UTF-8 otherwise), strictly."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    declared = _CHARSET.search(raw[:4096])
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return raw.decode(encoding)
    except (LookupError, UnicodeDecodeError) as error:
        raise UnreadableFileError(f"not valid {encoding} text ({error})") from error


def read_html(raw: bytes) -> Iterator[Part]:
    """The main content of a page as one Markdown part."""
    try:
        import trafilatura
    except ImportError as error:
        raise UnreadableFileError(f".html needs: {DOCUMENTS_EXTRA}") from error
    markup = html_text(raw)
    try:
        text = trafilatura.extract(
            markup,
            output_format="markdown",
            include_tables=True,
            include_images=False,
            include_links=False,
            include_comments=False,
            favor_recall=True,
            deduplicate=False,
            with_metadata=False,
        )
    except Exception as error:  # lxml and trafilatura raise many types on broken markup
        raise UnreadableFileError(f"not a readable web page ({error})") from error
    title = _title(markup)
    if text and text.strip():
        body = text.strip()
        if title and not body.startswith("#"):
            body = f"# {title}\n\n{body}"
        yield Part(body + "\n", "markdown")


def _title(markup: str) -> str:
    found = re.search(r"<title[^>]*>(.*?)</title>", markup, re.IGNORECASE | re.DOTALL)
    if not found:
        return ""
    import html

    return " ".join(html.unescape(found.group(1)).split())
