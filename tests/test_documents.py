"""The documents companies keep, indexed into a real Chroma on disk with the real MiniLM: every
sentence and cell is found in the chunks, with its location; web boilerplate is not; table
chunks repeat their header; a scan is read by OCR with its words whole; and what is not read is
said, by reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests import documents
from tests.documents import character_error_rate
from youtu_rag import MINILM, YoutuEmbedder
from youtu_rag.cli import app
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.pipeline import IngestReport, ingest

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company")
    documents.write_docx(folder / "report.docx")
    documents.write_pptx(folder / "deck.pptx")
    documents.write_xlsx(folder / "ledger.xlsx")
    (folder / "offices.csv").write_text(documents.CSV_TEXT, encoding="utf-8-sig")
    (folder / "policy.html").write_text(documents.html_page(), encoding="utf-8")
    documents.write_chinese_pdf(folder / "chinese.pdf")
    documents.write_mixed_pdf(folder / "contract.pdf")
    documents.scanned_page().save(folder / "photo.png")
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (folder / "archive.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    (folder / "notes").write_text("no suffix")
    return folder


@pytest.fixture(scope="module")
def indexed(
    company: Path, minilm: YoutuEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]]:
    store = ChromaStore.open(
        minilm, persist_dir=tmp_path_factory.mktemp("db"), collection="company"
    )
    report = ingest(store, [company], chunk_size=96, chunk_overlap=0)
    again = ingest(store, [company], chunk_size=96, chunk_overlap=0)  # OCR included: same ids
    assert (again.chunks_written, again.chunks_deleted, again.unchanged) == (0, 0, 8)
    records = store.collection.get(include=["documents", "metadatas"])
    chunks: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for text, metadata in zip(records["documents"] or [], records["metadatas"] or [], strict=True):
        name = Path(str(metadata["source"])).name
        chunks.setdefault(name, []).append((text or "", dict(metadata)))
    for found in chunks.values():
        found.sort(key=lambda item: int(item[1]["chunk"]))
    return report, chunks


def texts_of(chunks: list[tuple[str, dict[str, Any]]]) -> str:
    return flat(" ".join(text for text, _ in chunks))


def test_the_run_reads_every_format_and_names_what_it_does_not(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    report, chunks = indexed
    assert set(chunks) == {
        "report.docx",
        "deck.pptx",
        "ledger.xlsx",
        "offices.csv",
        "policy.html",
        "chinese.pdf",
        "contract.pdf",
        "photo.png",
    }
    assert report.unsupported == {".mp4": 1, ".zip": 1, "(none)": 1}
    assert report.skipped == [] and report.empty == 0
    assert report.ocr_pages == 2  # the scanned page of the contract, and the photo


def test_word(indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]]) -> None:
    chunks = indexed[1]["report.docx"]
    for section, sentences in documents.DOCX_SECTIONS.items():
        holding = [flat(text) for text, meta in chunks if meta.get("section") == section]
        for sentence in sentences:
            assert any(sentence in text for text in holding), (section, sentence, chunks)
    everything = texts_of(chunks)
    for cell in documents.DOCX_CELLS:
        assert cell in everything
    assert everything.count(documents.DOCX_HEADER) == 1


def test_powerpoint_with_notes(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    chunks = indexed[1]["deck.pptx"]
    for number, (title, lines) in documents.SLIDES.items():
        on_slide = flat(" ".join(text for text, meta in chunks if meta.get("slide") == number))
        assert title in on_slide and all(line in on_slide for line in lines), on_slide
    notes = flat(" ".join(text for text, meta in chunks if meta.get("slide") == 1))
    assert documents.NOTES[1] in notes
    slide_two = texts_of([chunk for chunk in chunks if chunk[1].get("slide") == 2])
    assert all(cell in slide_two for cell in documents.SLIDE_CELLS)


def test_excel_sheets_with_their_header_in_every_chunk(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    chunks = indexed[1]["ledger.xlsx"]
    ledger = [text for text, meta in chunks if meta.get("sheet") == "Ledger 账目"]
    summary = [text for text, meta in chunks if meta.get("sheet") == "Summary 汇总"]
    assert len(ledger) > 3 and len(summary) == 1
    header = "| " + " | ".join(documents.LEDGER_HEADER) + " |"
    for text in ledger:
        lines = text.splitlines()
        assert lines[0] == "## Ledger 账目" and lines[2] == header, text[:200]
    rows = "\n".join(ledger)
    for index in range(documents.LEDGER_ROWS):
        assert "| " + " | ".join(documents.ledger_row(index)) + " |" in rows, index
    # As the sheet shows them: a percentage and a grouped integer.
    assert "| 毛利率 Gross margin | 37.5% |" in summary[0]
    assert "| 客户 Customers | 1,234 |" in summary[0]


def test_csv_with_quoted_delimiters(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    chunks = indexed[1]["offices.csv"]
    text = chunks[0][0]
    assert text.startswith("| 城市 City | 地址 Address | 备注 Note |")  # the BOM is gone
    for cell in documents.CSV_CELLS:
        assert cell in text


def test_a_web_page_without_its_boilerplate(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    chunks = indexed[1]["policy.html"]
    everything = texts_of(chunks)
    for sentence in documents.HTML_CONTENT:
        assert sentence in everything
    for noise in documents.HTML_BOILERPLATE:
        assert noise not in everything, noise
    assert {meta.get("section") for _, meta in chunks} >= {
        "报销政策 Expense policy > 差旅 Travel",
        "报销政策 Expense policy > 审批 Approval",
    }


def test_pdf_pages_text_layer_and_ocr(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    chinese = indexed[1]["chinese.pdf"]
    for number, sentence in enumerate(documents.PDF_PAGES, start=1):
        assert [meta["page"] for text, meta in chinese if sentence in flat(text)] == [number]
        assert not any(meta.get("ocr") for _, meta in chinese)
    contract = indexed[1]["contract.pdf"]
    first = [(text, meta) for text, meta in contract if meta["page"] == 1]
    second = [(text, meta) for text, meta in contract if meta["page"] == 2]
    assert first and not any(meta.get("ocr") for _, meta in first)
    assert documents.PDF_PAGES[0] in texts_of(first)
    assert second and all(meta["ocr"] and meta["ocr_confidence"] > 0.9 for _, meta in second)
    assert_read_well(texts_of(second))


def test_a_photo_is_read_by_ocr(
    indexed: tuple[IngestReport, dict[str, list[tuple[str, dict[str, Any]]]]],
) -> None:
    chunks = indexed[1]["photo.png"]
    assert all(meta["ocr"] and meta["page"] == 1 for _, meta in chunks)
    assert_read_well(texts_of(chunks))


def assert_read_well(text: str) -> None:
    """Character error rate at most 2% against the rendered lines, and at least 95% of the
    English words whole."""
    expected = " ".join(documents.SCAN_LINES)
    assert character_error_rate(expected, text) <= 0.02, text
    words = [word for line in documents.SCAN_LINES if line.isascii() for word in line.split()]
    got = set(text.split())
    whole = sum(word in got for word in words)
    assert whole >= 0.95 * len(words), (whole, len(words), text)


def test_cli_lists_what_it_does_not_read(company: Path, tmp_path: Path) -> None:
    common = ["index", str(company), "--persist-dir", str(tmp_path / "db"), "-m", MINILM]
    result = runner.invoke(app, [*common, "--ocr", "never", "--json"])
    assert result.exit_code == 3, result.output  # the photo needs OCR, which --ocr never refuses
    report = json.loads(result.stdout)
    assert report["unsupported"] == {"(none)": 1, ".mp4": 1, ".zip": 1}
    assert report["ocr_pages"] == 0
    assert [entry["path"].rsplit("/", 1)[-1] for entry in report["skipped"]] == ["photo.png"]
    assert "only be read by OCR" in report["skipped"][0]["reason"]
    text = runner.invoke(app, [*common, "--ocr", "never"])
    assert "skipped 3 files of unsupported types: (none) (1), .mp4 (1), .zip (1)" in text.stderr


MISSING_EXTRAS = """
import json, sys
for name in ("docx", "pptx", "openpyxl", "trafilatura", "rapidocr_onnxruntime"):
    sys.modules[name] = None  # as if the extras were not installed
from youtu_rag.ingest.pipeline import plan_run
plan = plan_run([sys.argv[1]])
print(json.dumps({entry.path.rsplit("/", 1)[-1]: entry.reason for entry in plan.skipped}))
"""


def test_a_format_whose_extra_is_missing_is_named_with_the_install_line(company: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", MISSING_EXTRAS, str(company)],
        capture_output=True,
        text=True,
        check=True,
    )
    skipped = json.loads(completed.stdout)
    documents_extra = "pip install 'youtu-rag[documents]'"
    assert skipped == {
        "deck.pptx": f".pptx needs: {documents_extra}",
        "ledger.xlsx": f".xlsx needs: {documents_extra}",
        "policy.html": f".html needs: {documents_extra}",
        "photo.png": ".png needs: pip install 'youtu-rag[ocr]'",
        "report.docx": f".docx needs: {documents_extra}",
    }


def test_search_text_output_shows_where_a_chunk_is(company: Path, tmp_path: Path) -> None:
    db = ["--persist-dir", str(tmp_path / "db")]
    files = [str(company / name) for name in ("deck.pptx", "ledger.xlsx", "contract.pdf")]
    indexed = runner.invoke(app, ["index", *files, *db, "-m", MINILM])
    assert indexed.exit_code == 0, indexed.output
    lines = runner.invoke(app, ["search", "季度回顾 Quarterly review", "-k", "3", *db]).stdout
    assert "slide 1, § 季度回顾 Quarterly review" in lines
    lines = runner.invoke(app, ["search", "Frankfurt datacenter", "--mode", "lexical", *db]).stdout
    assert "page 2 (OCR)" in lines.splitlines()[0]
    lines = runner.invoke(app, ["search", "office supplies", "--mode", "lexical", *db]).stdout
    assert "sheet 'Ledger 账目'" in lines.splitlines()[0]
