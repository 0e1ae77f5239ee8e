# ruff: noqa: RUF001  (Chinese text and punctuation, on purpose)
"""Chunking on real MiniLM token counts: sentence-true cuts in Chinese and English, no cut inside
a run of digits or Latin letters, Markdown by section with heading paths, PDF pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_text_splitters import RecursiveCharacterTextSplitter

from tests.corpora import chinese_corpus, english_corpus
from tests.samples import pdf_pages
from youtu_rag import YoutuEmbedder
from youtu_rag.ingest.chunking import (
    SEPARATOR_PRESETS,
    Chunker,
    make_chunker,
    parse_separators,
)
from youtu_rag.model.tokenization import count_tokens

SENTENCE_ENDS = "。！？；…!?."
CLAUSE_ENDS = "，、：,;:"
CLOSERS = "”’」』）》\"')"
RUN = re.compile(r"[0-9A-Za-z]")


def locate(text: str, chunks: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each chunk in ``text``, in order (chunks may overlap)."""
    spans = []
    cursor = 0
    for chunk in chunks:
        start = text.find(chunk, cursor)
        assert start != -1, f"chunk not found in order: {chunk[:40]!r}"
        spans.append((start, start + len(chunk)))
        cursor = start + 1
    return spans


def ends_well(text: str, end: int, punctuation: str) -> bool:
    """The chunk ending at ``end`` ends at ``punctuation`` (closing quotes aside), or at the end
    of a paragraph or of the text."""
    if end == len(text) or text[end] == "\n":
        return True
    return text[:end].rstrip(CLOSERS)[-1:] in set(punctuation)


def cuts_inside_runs(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """Cuts (chunk starts and ends) that fall between two digits or Latin letters."""
    cuts = {start for start, _ in spans} | {end for _, end in spans}
    return [
        text[max(0, cut - 10) : cut] + "‖" + text[cut : cut + 10]
        for cut in sorted(cuts)
        if 0 < cut < len(text) and RUN.match(text[cut - 1]) and RUN.match(text[cut])
    ]


@pytest.fixture(scope="module")
def chunker(minilm: YoutuEmbedder) -> Chunker:
    return make_chunker(minilm, chunk_size=128)


@pytest.mark.parametrize(
    ("corpus", "punctuation"),
    [
        (chinese_corpus(100_000), SENTENCE_ENDS + CLAUSE_ENDS),
        (english_corpus(100_000), SENTENCE_ENDS),
    ],
    ids=["chinese", "english"],
)
def test_chunks_end_at_sentences_and_never_inside_a_run(
    chunker: Chunker, minilm: YoutuEmbedder, corpus: str, punctuation: str
) -> None:
    assert len(corpus.encode("utf-8")) >= 100_000
    paragraphs = corpus.split("\n\n")
    tokenizer = minilm.backbone.tokenizer
    assert sum(count_tokens(tokenizer, p) > 128 for p in paragraphs) > len(paragraphs) // 2
    chunks = [chunk.text for chunk in chunker.split_text(corpus)]
    spans = locate(corpus, chunks)
    well = sum(ends_well(corpus, end, punctuation) for _, end in spans)
    assert well >= 0.98 * len(chunks), f"{well} of {len(chunks)} chunks end at a sentence"
    assert cuts_inside_runs(corpus, spans) == []
    assert max(count_tokens(tokenizer, chunk) for chunk in chunks) <= 128
    assert all(not chunk.metadata for chunk in chunker.split_text(paragraphs[0]))


def test_chinese_punctuation_stays_with_its_sentence(chunker: Chunker) -> None:
    text = "第一句话说完了。第二句问：“真的吗？”第三句感叹！" * 40
    for chunk in chunker.split_text(text):
        assert chunk.text[0] not in "。！？：”", chunk.text[:10]


@pytest.mark.parametrize(
    "sentence",
    [
        "这是一个没有任何标点的很长的句子里面有型号ABC-12345和数字第10句还有英文单词Embedding" * 12,
        " ".join(["a sentence without an end that runs on with code ABC-123 and 4567"] * 20),
    ],
    ids=["chinese", "english"],
)
def test_a_sentence_longer_than_a_chunk_is_split_within_the_size(
    minilm: YoutuEmbedder, sentence: str
) -> None:
    chunker = make_chunker(minilm, chunk_size=50, chunk_overlap=0)
    chunks = [chunk.text for chunk in chunker.split_text(sentence)]
    assert len(chunks) > 3
    tokenizer = minilm.backbone.tokenizer
    assert max(count_tokens(tokenizer, chunk) for chunk in chunks) <= 50
    assert "".join(chunks).replace(" ", "") == sentence.replace(" ", "")
    assert cuts_inside_runs(sentence, locate(sentence, chunks)) == []


_ALPHABET = [*"中文字符句子模型检索。，！？；、：", *"abcXYZ0189", " ", "\n", ". ", ", "]


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.sampled_from(_ALPHABET), min_size=1, max_size=400))
def test_any_text_is_split_within_the_size_and_loses_nothing(pieces: list[str]) -> None:
    text = "".join(pieces)
    splitter = RecursiveCharacterTextSplitter(
        separators=list(SEPARATOR_PRESETS["default"]),
        keep_separator="end",
        is_separator_regex=True,
        chunk_size=24,
        chunk_overlap=0,
    )
    chunks = splitter.split_text(text)
    assert all(len(chunk) <= 24 for chunk in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())
    # Runs of digits and letters shorter than the size can always be kept whole.
    runs_fit = all(len(run) < 24 for run in re.findall(r"[0-9A-Za-z]+", text))
    if runs_fit:
        assert cuts_inside_runs(text, locate(text, chunks)) == []


def test_separators_are_a_preset_or_a_list_of_expressions(minilm: YoutuEmbedder) -> None:
    assert parse_separators(None) == "default"
    assert parse_separators("cjk") == "cjk"
    assert parse_separators('["\\\\n\\\\n", "(?<=。)"]') == ("\\n\\n", "(?<=。)", "")
    with pytest.raises(ValueError, match="cjk"):
        parse_separators("chinese")
    with pytest.raises(ValueError, match="regular expression"):
        parse_separators('["(unclosed"]')
    with pytest.raises(ValueError, match="list of strings"):
        parse_separators('{"a": 1}')
    with pytest.raises(TypeError, match="index 1"):
        parse_separators(["(?<=。)", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="NoneType"):
        make_chunker(minilm).split_text(None)  # type: ignore[arg-type]
    assert make_chunker(minilm).split_text(" \n ") == []
    text = "第一句。第二句。第三句。" * 30
    cut_at_periods = make_chunker(minilm, 20, 0, separators='["(?<=。)"]')
    assert all(chunk.text.endswith("。") for chunk in cut_at_periods.split_text(text))
    assert cut_at_periods.rules.separators == ("(?<=。)", "")


GUIDE = """\
Intro text before any heading.

# Guide

## Install

### Linux

Run the installer. {linux}

### Windows
Double-click the installer. Then restart.

## Use

{use}

---

After the break, still in Use.

```bash
# a comment, not a heading
pip install youtu-rag
```

# 指南

## 安装

### Linux

运行安装程序。{zh}

## 使用
"""


def guide() -> str:
    return GUIDE.format(
        linux=" ".join(f"Step {n} configures part {n} of the system." for n in range(1, 30)),
        use=" ".join(f"Query number {n} returns passages." for n in range(1, 25)),
        zh="".join(f"第{n}步配置系统的第{n}部分。" for n in range(1, 40)),
    )


HEADING = re.compile(r"#{1,6} ")


def heading_lines(text: str) -> list[int]:
    """Numbers of the heading lines among a chunk's non-blank lines, outside fenced code."""
    lines = []
    fenced = False
    for number, line in enumerate(line for line in text.splitlines() if line.strip()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and HEADING.match(line):
            lines.append(number)
    return lines


def test_markdown_is_split_by_section_with_heading_paths(minilm: YoutuEmbedder) -> None:
    chunker = make_chunker(minilm, chunk_size=64)
    chunks = chunker.split_text(guide(), "markdown")
    for chunk in chunks:
        headings = heading_lines(chunk.text)
        if headings:
            assert headings[0] == 0, f"a heading inside: {chunk.text[:60]!r}"
            lines = chunk.text.splitlines()
            # Headings only at the top, followed by body.
            assert headings == list(range(len(headings)))
            if chunk is not chunks[-1]:  # the last heading has no body at all
                assert len(headings) < len([line for line in lines if line.strip()])
        assert count_tokens(minilm.backbone.tokenizer, chunk.text) <= 64
    sections = [chunk.metadata.get("section") for chunk in chunks]
    assert sections[0] is None and chunks[0].text == "Intro text before any heading."
    assert chunks[1].text.startswith("# Guide\n\n## Install\n\n### Linux\n\nRun the installer.")
    assert sections.count("Guide > Install > Linux") > 1  # a long section: several chunks
    windows = next(c for c in chunks if c.metadata.get("section") == "Guide > Install > Windows")
    assert windows.text == "### Windows\n\nDouble-click the installer. Then restart."
    use = [chunk.text for chunk in chunks if chunk.metadata.get("section") == "Guide > Use"]
    assert use[0].startswith("## Use") and "---" not in "".join(use)
    assert any(text.startswith("After the break") for text in use)  # the break cut
    assert any("# a comment, not a heading" in text for text in use)  # code stays code
    chinese = [c for c in chunks if c.metadata.get("section") == "指南 > 安装 > Linux"]
    assert len(chinese) > 1 and chinese[0].text.startswith("# 指南\n\n## 安装\n\n### Linux")
    assert all(text.endswith("。") for text in (c.text for c in chinese))
    assert chunks[-1].text == "## 使用" and chunks[-1].metadata["section"] == "指南 > 使用"


def test_markdown_headings_carry_across_segments(minilm: YoutuEmbedder) -> None:
    chunker = make_chunker(minilm, chunk_size=64)
    text = guide()
    cut = text.index("Step 10 ")
    whole = chunker.split_text(text, "markdown")
    segmented = list(chunker.split_segments([text[:cut], text[cut:]], "markdown"))
    assert {c.metadata.get("section") for c in segmented} == {
        c.metadata.get("section") for c in whole
    }
    after = [c for c in segmented if "Step 12 " in c.text]
    assert after[0].metadata["section"] == "Guide > Install > Linux"


def test_a_heading_never_ends_a_chunk_when_its_body_is_long(minilm: YoutuEmbedder) -> None:
    body = "".join(f"这一段的第{n}句很长，而且没有换行。" for n in range(60))
    text = f"# 标题\n\n{body}\n\n## Next\n\n{body}\n"
    chunks = make_chunker(minilm, chunk_size=40).split_text(text, "markdown")
    for chunk in chunks:
        lines = [line for line in chunk.text.splitlines() if line.strip()]
        assert not HEADING.match(lines[-1]), chunk.text
        assert count_tokens(minilm.backbone.tokenizer, chunk.text) <= 40
    assert [c.text.split("\n")[0] for c in chunks if "#" in c.text] == ["# 标题", "## Next"]


def test_pdf_chunks_carry_their_page(minilm: YoutuEmbedder, tmp_path: Path) -> None:
    from youtu_rag.ingest.formats import open_parts

    pages = [f"Page {n} says that masked mean pooling ignores prefix tokens." for n in (1, 2, 3)]
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(pdf_pages(*pages))
    chunker = make_chunker(minilm, chunk_size=64)
    chunks = list(chunker.split_parts(open_parts(pdf)))
    assert [(c.text, c.metadata) for c in chunks] == [
        (text, {"page": number}) for number, text in enumerate(pages, start=1)
    ]


def test_bench_chunking_compares_with_the_splitter_before(
    minilm: YoutuEmbedder, tmp_path: Path
) -> None:
    from youtu_rag.measure.bench_chunking import bench_chunking

    path = tmp_path / "zh.txt"
    path.write_text(chinese_corpus(5_000), encoding="utf-8")
    result = bench_chunking(minilm, path, chunk_size=64, repeats=1)
    runs = {run["splitter"]: run for run in result["runs"]}
    text = path.read_text(encoding="utf-8")
    assert runs["default"]["chunks"] == len(make_chunker(minilm, 64).split_text(text))
    tokenizer = minilm.backbone.tokenizer
    before = RecursiveCharacterTextSplitter(
        chunk_size=64, chunk_overlap=8, length_function=lambda text: len(tokenizer.tokenize(text))
    )
    assert runs["before"]["chunks"] == len(before.split_text(text))
    assert runs["before"]["vs_before"] == 1.0 and runs["default"]["peak_mib"] > 0


_TITLES = ["Guide", "Install", "Linux", "指南", "安装", "使用方法", "FAQ 第10节"]
_BODY = [
    "Run the installer and restart.",
    "这一步需要管理员权限，请先确认。",
    "Model ABC-123 reads 第10句 well!",
    "很长的段落" * 30 + "。",
    "Short.",
]


@settings(max_examples=60, deadline=None)
@given(
    sections=st.lists(
        st.tuples(
            st.integers(1, 4),
            st.sampled_from(_TITLES),
            st.lists(st.sampled_from(_BODY), max_size=6),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_markdown_keeps_headings_at_the_top_of_chunks(
    minilm: YoutuEmbedder, sections: list[tuple[int, str, list[str]]]
) -> None:
    text = "".join(
        f"{'#' * level} {title}\n\n" + "".join(f"{body}\n\n" for body in bodies)
        for level, title, bodies in sections
    )
    chunks = make_chunker(minilm, chunk_size=48).split_text(text, "markdown")
    for number, chunk in enumerate(chunks):
        lines = [line for line in chunk.text.splitlines() if line.strip()]
        headings = [i for i, line in enumerate(lines) if HEADING.match(line)]
        assert headings == list(range(len(headings))), chunk.text  # only at the top
        if headings and number < len(chunks) - 1:
            assert len(headings) < len(lines), chunk.text  # never a heading alone
        if headings:
            assert chunk.metadata["section"].endswith(lines[headings[-1]].lstrip("#").strip())
        assert count_tokens(minilm.backbone.tokenizer, chunk.text) <= 48
