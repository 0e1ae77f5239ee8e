# ruff: noqa: RUF001  (the separators are CJK punctuation, on purpose)
"""Text -> chunks with metadata: script-aware cuts, Markdown by section, PDF by page.

A chunk is cut where a reader would pause, in the order a reader would prefer: a paragraph
break, a line break, the end of a sentence in any script (Chinese has no spaces, so a splitter
that only knows spaces cuts Chinese anywhere, mid-word), a clause, a space, the edge of a run of
digits or Latin letters (so ``第10句`` or ``ABC-123`` stay whole), and only as the last resort
anywhere. Punctuation stays with the sentence it ends. It remains LangChain's
``RecursiveCharacterTextSplitter`` measuring in the embedder's own tokens: the rules are its
separators, as regular expressions.

Markdown is split by section first: headings and thematic breaks always cut, a heading is never
left at the end of a chunk whose body is elsewhere, and each chunk records its heading path
(``"Guide > Install > Linux"``). PDF pages always cut, and each chunk records its page.

The rules a collection was built with are part of its identity (:class:`ChunkingRules`): other
rules give other chunks, and mixing the two in one index would go unnoticed.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter, TextSplitter
from transformers import PreTrainedTokenizerBase

from youtu_rag.backends.protocol import Embedder
from youtu_rag.ingest.parts import DocumentKind, Part, Scalar
from youtu_rag.ingest.reading import PAGE_BREAK
from youtu_rag.model.embedder import YoutuEmbedder
from youtu_rag.model.tokenization import count_tokens, encode_batch

__all__ = [
    "CHUNKING_VERSION",
    "DEFAULT_CHUNK_CHARACTERS",
    "DEFAULT_CHUNK_TOKENS",
    "SEPARATOR_PRESETS",
    "Chunk",
    "Chunker",
    "ChunkingRules",
    "DocumentKind",
    "chunk_limit",
    "make_chunker",
    "make_splitter",
    "parse_separators",
]

#: Version of the chunking rules; bump it whenever the same text and options give other chunks.
#: Collections indexed before any version was recorded were chunked by LangChain's default
#: separators, with Markdown headings that never matched.
CHUNKING_VERSION = "2"

#: Chunk size when none is given, capped by the model's limit (a few paragraphs: precise enough
#: to cite, long enough to stand alone in a prompt).
DEFAULT_CHUNK_TOKENS = 512
#: The same for an API model, whose limit is in characters (2000 characters: ~500 English tokens).
DEFAULT_CHUNK_CHARACTERS = 2000

# Closing quotes and brackets that belong to the sentence they follow.
_CJK_CLOSERS = "”’」』）》】〕〉"
_LATIN_CLOSERS = "\"'”’)\\]"
_PARAGRAPH = r"\n\s*\n"
_LINE = r"\n"
_CJK_SENTENCE = rf"(?<=[。！？；．｡…])[{_CJK_CLOSERS}]*"
_LATIN_SENTENCE = rf"(?<=[.!?])[{_LATIN_CLOSERS}]*\s+"
_CJK_CLAUSE = rf"(?<=[，、：､])[{_CJK_CLOSERS}]*"
_LATIN_CLAUSE = rf"(?<=[,;:])[{_LATIN_CLOSERS}]*\s+"
_SPACE = r"\s+"
_RUN = "0-9A-Za-z０-９Ａ-Ｚａ-ｚ"
# Every position that is not inside a run of digits or Latin letters.
_OUTSIDE_RUN = rf"(?<![{_RUN}])|(?![{_RUN}])"

#: Named separator lists (regular expressions, tried in order; ``""`` cuts anywhere).
SEPARATOR_PRESETS: dict[str, tuple[str, ...]] = {
    "default": (
        _PARAGRAPH,
        _LINE,
        f"{_CJK_SENTENCE}|{_LATIN_SENTENCE}",
        f"{_CJK_CLAUSE}|{_LATIN_CLAUSE}",
        _SPACE,
        _OUTSIDE_RUN,
        "",
    ),
    "cjk": (_PARAGRAPH, _LINE, _CJK_SENTENCE, _CJK_CLAUSE, _OUTSIDE_RUN, _SPACE, ""),
    "latin": (_PARAGRAPH, _LINE, _LATIN_SENTENCE, _LATIN_CLAUSE, _SPACE, _OUTSIDE_RUN, ""),
    # LangChain's own default, as youtu-rag used it before version 2.
    "langchain": (r"\n\n", r"\n", " ", ""),
}

_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*\r?\n?")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*\r?\n?")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed, and what locates it in the document."""

    text: str
    metadata: dict[str, Scalar] = field(default_factory=dict)
    """Where it is: ``section`` (the heading path), ``page``, ``slide``, ``sheet``, ``ocr``
    and ``ocr_confidence``, when known."""


@dataclass(frozen=True)
class ChunkingRules:
    """What decides a collection's chunks: recorded with it so that other rules never mix in."""

    splitter: str
    """``RecursiveCharacterTextSplitter`` for ours, else the class of a given splitter."""
    chunk_size: int
    chunk_overlap: int
    unit: str
    """``tokens`` (the embedder's own), ``characters``, or a given splitter's own units."""
    separators: str | tuple[str, ...] | None = None
    """A preset name, or the regular expressions given; ``None`` for a given splitter."""
    version: str = CHUNKING_VERSION

    def to_record(self) -> str:
        """The compact JSON kept in the collection's metadata (compared, never executed)."""
        separators = list(self.separators) if isinstance(self.separators, tuple) else None
        record = {
            "version": self.version,
            "splitter": self.splitter,
            "size": self.chunk_size,
            "overlap": self.chunk_overlap,
            "unit": self.unit,
            "separators": separators if separators is not None else self.separators,
        }
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    def describe(self) -> str:
        """One line for messages: ``v2, default separators, 512/64 tokens``."""
        if isinstance(self.separators, tuple):
            separators = f"{len(self.separators)} custom separators"
        elif self.separators is None:
            separators = "a given splitter"
        else:
            separators = f"{self.separators} separators"
        return (
            f"v{self.version}, {self.splitter} with {separators}, "
            f"{self.chunk_size}/{self.chunk_overlap} {self.unit}"
        )


def chunk_limit(embedder: Embedder) -> int:
    """The most tokens a chunk may have so that prefix, special tokens and chunk fit the model.

    An API model without a local tokenizer counts characters, up to its own limit.

    Args:
        embedder: the embedder the chunks are for.

    Returns:
        The limit in tokens (characters for an API model).
    """
    if not isinstance(embedder, YoutuEmbedder):
        return embedder.max_length
    prefix = encode_batch(embedder.backbone.tokenizer, [embedder.document_prefix], max_length=None)
    # One token of slack: a chunk tokenized after the prefix may merge differently at the seam.
    return embedder.max_length - len(prefix[0]) - 1


def parse_separators(value: str | Sequence[str] | None) -> str | tuple[str, ...]:
    """A preset name (see :data:`SEPARATOR_PRESETS`) or a list of regular expressions, checked.

    A JSON list given as text (``'["\\\\n\\\\n", "(?<=。)", ""]'``) is parsed. ``""`` (cut
    anywhere) is appended when missing, so that no chunk outgrows the size.

    Raises:
        ValueError: an unknown preset, not a list of strings, or an invalid expression.
    """
    if value is None:
        return "default"
    if isinstance(value, str):
        if value in SEPARATOR_PRESETS:
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f"separators must be one of {', '.join(SEPARATOR_PRESETS)} or a JSON list of "
                f"regular expressions, got {value!r}"
            ) from None
    else:
        parsed = list(value)
        for index, item in enumerate(parsed):
            if not isinstance(item, str):
                raise TypeError(f"separator at index {index} is {type(item).__name__}, not str")
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise ValueError("separators must be a JSON list of strings (regular expressions)")
    for item in parsed:
        try:
            re.compile(item)
        except re.error as error:
            raise ValueError(
                f"separator {item!r} is not a valid regular expression: {error}"
            ) from None
    if not parsed or parsed[-1] != "":
        parsed.append("")
    return tuple(parsed)


def make_splitter(
    embedder: Embedder,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    *,
    separators: str | Sequence[str] | None = None,
) -> TextSplitter:
    """The script-aware recursive splitter, measuring chunks with the embedder's own tokenizer
    (in characters for an API model).

    Default size: :data:`DEFAULT_CHUNK_TOKENS` (:data:`DEFAULT_CHUNK_CHARACTERS`) or the
    model's limit if lower; default overlap: an eighth of the size. Tokens are counted as
    ``tokenizer.tokenize`` does, through :mod:`youtu_rag.model.tokenization`, so splitting is
    safe next to embedding in other threads.

    Args:
        embedder: its tokenizer measures the chunks.
        chunk_size: tokens per chunk (characters for an API model).
        chunk_overlap: tokens shared by neighbours (default an eighth of the size).
        separators: a preset name of :data:`SEPARATOR_PRESETS` (default ``"default"``) or a
            list of regular expressions, see :func:`parse_separators`.

    Returns:
        The splitter.

    Raises:
        ValueError: a size above the model's limit (the tail of such chunks would be truncated
            away and never found), an overlap not below the size, or bad separators.
    """
    return make_chunker(embedder, chunk_size, chunk_overlap, separators=separators).splitter


def make_chunker(
    embedder: Embedder,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    *,
    separators: str | Sequence[str] | None = None,
    splitter: TextSplitter | None = None,
) -> Chunker:
    """The chunker for ``embedder``: :func:`make_splitter`'s splitter, or ``splitter`` as given
    (then sizes and separators are the splitter's own, and must not be passed too).

    Raises:
        ValueError: see :func:`make_splitter`; sizes or separators with a given splitter.
    """
    if splitter is not None:
        if chunk_size is not None or chunk_overlap is not None or separators is not None:
            raise ValueError("pass chunk size, overlap and separators to the splitter itself")
        if not isinstance(splitter, TextSplitter):
            raise TypeError(f"splitter is {type(splitter).__name__}, not a LangChain TextSplitter")
        kind = type(splitter)
        rules = ChunkingRules(
            splitter=f"{kind.__module__}.{kind.__qualname__}",
            chunk_size=splitter._chunk_size,
            chunk_overlap=splitter._chunk_overlap,
            unit="its own units",
        )
        return Chunker(splitter, rules)
    limit = chunk_limit(embedder)
    local = isinstance(embedder, YoutuEmbedder)
    default = DEFAULT_CHUNK_TOKENS if local else DEFAULT_CHUNK_CHARACTERS
    size = min(default, limit) if chunk_size is None else chunk_size
    unit = "tokens" if local else "characters"
    if not 1 <= size <= limit:
        raise ValueError(
            f"chunk size must be between 1 and {limit} {unit} for {embedder.model_name} "
            f"(max length {embedder.max_length}), got {size}"
        )
    overlap = size // 8 if chunk_overlap is None else chunk_overlap
    if not 0 <= overlap < size:
        raise ValueError(f"chunk overlap must be at least 0 and below {size}, got {overlap}")
    chosen = parse_separators(separators)
    patterns = list(SEPARATOR_PRESETS[chosen] if isinstance(chosen, str) else chosen)
    measure: dict[str, Any] = {}
    if isinstance(embedder, YoutuEmbedder):
        measure["length_function"] = TokenLength(embedder.backbone.tokenizer, remember_up_to=size)
    recursive = RecursiveCharacterTextSplitter(
        separators=patterns,
        keep_separator="end",
        is_separator_regex=True,
        chunk_size=size,
        chunk_overlap=overlap,
        **measure,
    )
    rules = ChunkingRules("RecursiveCharacterTextSplitter", size, overlap, unit, chosen)
    return Chunker(recursive, rules)


class TokenLength:
    """Tokens of a text without special tokens, remembering the latest pieces measured: the
    recursive splitter measures every piece that fits a chunk twice (to split, then to merge),
    and tokenizing is most of its time. Only pieces of at most ``remember_up_to`` tokens are
    remembered, at most :attr:`REMEMBERED` of them, so memory stays bounded by the chunk size."""

    REMEMBERED = 1024

    def __init__(self, tokenizer: PreTrainedTokenizerBase, remember_up_to: int) -> None:
        self.tokenizer = tokenizer
        self.remember_up_to = remember_up_to
        self.lengths: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        length = self.lengths.get(text)
        if length is None:
            length = count_tokens(self.tokenizer, text)
            if length <= self.remember_up_to:
                if len(self.lengths) >= self.REMEMBERED:
                    self.lengths.clear()
                self.lengths[text] = length
        return length

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "lengths": {}}


@dataclass(frozen=True)
class Chunker:
    """One splitter for every file, and the structure each kind of file adds: Markdown sections,
    PDF pages. Picklable, for Ray workers."""

    splitter: TextSplitter
    rules: ChunkingRules

    def split_text(self, text: str, kind: DocumentKind = "text") -> list[Chunk]:
        """The chunks of one whole document (see :meth:`split_segments`); none for an empty
        one."""
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, not str")
        return list(self.split_segments([text], kind))

    def split_parts(self, parts: Iterable[Part]) -> Iterator[Chunk]:
        """The chunks of one document handed over in parts (see
        :mod:`~youtu_rag.ingest.parts`): consecutive parts of one kind, location and header
        are split as one run of segments; each chunk records its part's location."""
        for (kind, _, header), run in itertools.groupby(
            parts, key=lambda part: (part.kind, sorted(part.location.items()), part.header)
        ):
            run_parts = iter(run)
            first = next(run_parts)
            location = dict(first.location)
            texts = itertools.chain([first.text], (part.text for part in run_parts))
            if kind == "table":
                chunks = self._table(header, texts)
            else:
                chunks = self.split_segments(texts, kind)
            for chunk in chunks:
                yield Chunk(chunk.text, {**location, **chunk.metadata})

    def _table(self, header: str, texts: Iterable[str]) -> Iterator[Chunk]:
        """Table rows under ``header``, as many rows a chunk as fit with the header, the header
        at the top of every chunk; a row too long for a chunk alone is split under it."""
        size = self.splitter._chunk_size
        measure = self.splitter._length_function
        room = max(size - measure(header + "\n") if header else size, size // 4, 1)
        rows: list[str] = []
        used = 0
        emitted = False
        for row in (line for text in texts for line in text.splitlines() if line.strip()):
            length = measure(row + "\n")
            if rows and used + length > room:
                yield Chunk(_under(header, rows))
                emitted, rows, used = True, [], 0
            if length > room:
                smaller = copy.copy(self.splitter)
                smaller._chunk_size = room
                smaller._chunk_overlap = min(smaller._chunk_overlap, room // 8)
                for piece in smaller.split_text(row):
                    if piece.strip():
                        yield Chunk(_under(header, [piece]))
                emitted = True
                continue
            rows.append(row)
            used += length
        if rows or (header and not emitted):
            yield Chunk(_under(header, rows))

    def split_segments(
        self, segments: Iterable[str], kind: DocumentKind = "text"
    ) -> Iterator[Chunk]:
        """The chunks of one document handed over in consecutive segments; no chunk spans two
        segments, but heading paths and page numbers carry on from one to the next. Empty and
        whitespace-only chunks are dropped."""
        if kind == "markdown":
            yield from self._markdown(segments)
            return
        page = 1
        for segment in segments:
            parts = segment.split(PAGE_BREAK) if kind == "pdf" else [segment]
            for number, part in enumerate(parts):
                if number:
                    page += 1
                metadata: dict[str, str | int] = {"page": page} if kind == "pdf" else {}
                for text in self.splitter.split_text(part):
                    if text.strip():
                        yield Chunk(text, dict(metadata))

    def _markdown(self, segments: Iterable[str]) -> Iterator[Chunk]:
        sections = _Sections()
        carry = ""
        for segment in segments:
            lines = (carry + segment).splitlines(keepends=True)
            carry = lines.pop() if lines and not lines[-1].endswith("\n") else ""
            for section in sections.feed(lines):
                yield from self._section(*section)
            # Chunks never span segments: what the segment left of a section is split now.
            for section in sections.flush(keep_headings=True):
                yield from self._section(*section)
        for section in sections.feed([carry] if carry else []):
            yield from self._section(*section)
        for section in sections.flush(keep_headings=False):
            yield from self._section(*section)

    def _section(self, path: str, headings: str, body: str) -> Iterator[Chunk]:
        """Chunks of one section: its headings open the first chunk, never end one alone."""
        metadata: dict[str, str | int] = {"section": path} if path else {}
        texts = [text for text in self.splitter.split_text(body) if text.strip()]
        heading = headings.strip()
        if heading:
            texts = self._open_with(heading, texts)
        for text in texts:
            yield Chunk(text, dict(metadata))

    def _open_with(self, heading: str, texts: list[str]) -> list[str]:
        """Put ``heading`` in front of the first of ``texts``, re-splitting that one smaller
        when both do not fit one chunk."""
        if not texts:
            return [heading]
        size = self.splitter._chunk_size
        measure = self.splitter._length_function
        joined = f"{heading}\n\n{texts[0]}"
        if measure(joined) <= size:
            return [joined, *texts[1:]]
        room = size - measure(heading + "\n\n")
        if room < max(1, size // 4):
            return [joined if measure(joined) <= size else heading, *texts[1:]]
        smaller = copy.copy(self.splitter)
        smaller._chunk_size = room
        smaller._chunk_overlap = min(smaller._chunk_overlap, room // 8)
        first, *rest = [text for text in smaller.split_text(texts[0]) if text.strip()]
        return [f"{heading}\n\n{first}", *rest, *texts[1:]]


def _under(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows] if header else rows)


class _Sections:
    """Markdown lines -> (heading path, heading lines, body) per section, across segments.

    ATX headings (``#`` to ``######``) and thematic breaks (``---``, ``***``, ``___``) cut,
    except inside fenced code. A heading with no body before the next heading joins that
    section, so that a heading is never left alone.
    """

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []
        self.fence: str | None = None
        self.headings: list[str] = []
        self.body: list[str] = []

    @property
    def path(self) -> str:
        return " > ".join(title for _, title in self.stack if title)

    def feed(self, lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
        for line in lines:
            if self.fence is not None:
                self.body.append(line)
                stripped = line.strip()
                if stripped.startswith(self.fence) and not stripped.strip(self.fence[0]):
                    self.fence = None
                continue
            fence = _FENCE.match(line)
            if fence:
                self.fence = fence.group(1)
                self.body.append(line)
                continue
            heading = _HEADING.fullmatch(line)
            if heading:
                if self._has_body():
                    yield from self.flush(keep_headings=False)
                elif self.body:  # blank lines only, between headings
                    self.headings.extend(self.body)
                    self.body = []
                level = len(heading.group(1))
                self.stack = [entry for entry in self.stack if entry[0] < level]
                self.stack.append((level, (heading.group(2) or "").strip()))
                self.headings.append(line)
                continue
            if _THEMATIC_BREAK.fullmatch(line):
                if self._has_body():
                    yield from self.flush(keep_headings=False)
                continue
            self.body.append(line)

    def _has_body(self) -> bool:
        return any(line.strip() for line in self.body)

    def flush(self, *, keep_headings: bool) -> Iterator[tuple[str, str, str]]:
        """The section gathered so far; with ``keep_headings``, headings without a body yet
        wait for it."""
        if not self._has_body():
            if not keep_headings and any(line.strip() for line in self.headings):
                yield self.path, "", "".join(self.headings)
                self.headings = []
            self.body = []
            return
        yield self.path, "".join(self.headings), "".join(self.body)
        self.headings = []
        self.body = []
