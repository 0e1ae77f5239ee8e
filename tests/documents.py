# ruff: noqa: RUF001  (Chinese text and punctuation, on purpose)
"""Company documents built by the tests themselves, in Chinese and English: a Word report, a
slide deck with speaker notes, a two-sheet workbook, a CSV export, a saved web page full of
boilerplate, a born-digital Chinese PDF, and a scanned page rendered with a CJK font from PyPI
(as an image, and inside a PDF beside a page with a text layer). Each builder returns what must
be found in the index, and where."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import cvttf_NotoSansCJK_Regular
from PIL import Image, ImageDraw, ImageFont

FONT = Path(cvttf_NotoSansCJK_Regular.__file__).parent / "NotoSansCJKtc-Regular.otf"

DOCX_HEADER = "Acme 机密 Confidential"
DOCX_SECTIONS = {
    "第一章 总则 General": [
        "员工应在费用发生后三十天内提交报销申请。",
        "Employees must file expense claims within thirty days.",
    ],
    "第二章 差旅 Travel": [
        "国内出差住宿标准为每晚五百元。",
        "Domestic hotel stays are capped at 500 yuan per night.",
        "高铁二等座 Second-class rail seats",
    ],
}
DOCX_CELLS = ["城市 City", "上限 Cap", "北京 Beijing", "600"]


def write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = DOCX_HEADER
    document.add_heading("报销制度 Expense policy", level=0)
    for section, sentences in DOCX_SECTIONS.items():
        document.add_heading(section, level=1)
        for sentence in sentences[:2]:
            document.add_paragraph(sentence)
        for item in sentences[2:]:
            document.add_paragraph(item, style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(
        [cell for row in table.rows for cell in row.cells], DOCX_CELLS, strict=True
    ):
        cell.text = text
    document.add_page_break()
    document.save(str(path))


SLIDES = {
    1: ("季度回顾 Quarterly review", ["收入同比增长百分之十二。", "Revenue grew twelve percent."]),
    2: ("下一步 Next steps", ["扩大华南市场。", "Hire two sales engineers."]),
}
NOTES = {1: "演讲者备注：强调利润率。Speaker note: stress the margin."}
SLIDE_CELLS = ["区域 Region", "目标 Target", "华南 South", "120"]


def write_pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for number, (title, lines) in SLIDES.items():
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        body.add_paragraph().text = lines[1]
        if number in NOTES:
            slide.notes_slide.notes_text_frame.text = NOTES[number]
        if number == 2:
            shape = slide.shapes.add_table(2, 2, Inches(1), Inches(5), Inches(6), Inches(1))
            cells = [cell for row in shape.table.rows for cell in row.cells]
            for cell, text in zip(cells, SLIDE_CELLS, strict=True):
                cell.text = text
    deck.save(str(path))


LEDGER_HEADER = ["日期 Date", "项目 Item", "金额 Amount"]
LEDGER_ROWS = 150
SUMMARY = [["指标 Metric", "数值 Value"], ["毛利率 Gross margin", 0.375], ["客户 Customers", 1234]]


def ledger_row(index: int) -> list[str]:
    """Row ``index`` as the sheet shows it: date, item, amount with two decimals."""
    day = dt.date(2024, 1, 1) + dt.timedelta(days=index)
    return [day.isoformat(), f"办公用品 office supplies #{index}", f"{1000 + index * 7.5:,.2f}"]


def write_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    ledger = book.active
    ledger.title = "Ledger 账目"
    ledger.append(LEDGER_HEADER)
    for index in range(LEDGER_ROWS):
        ledger.append(
            [
                dt.date(2024, 1, 1) + dt.timedelta(days=index),
                f"办公用品 office supplies #{index}",
                1000 + index * 7.5,
            ]
        )
        ledger.cell(row=index + 2, column=1).number_format = "yyyy-mm-dd"
        ledger.cell(row=index + 2, column=3).number_format = "#,##0.00"
    summary = book.create_sheet("Summary 汇总")
    for row in SUMMARY:
        summary.append(row)
    summary["B2"].number_format = "0.0%"
    summary["B3"].number_format = "#,##0"
    book.save(str(path))


CSV_TEXT = (
    "城市 City,地址 Address,备注 Note\r\n"
    '北京 Beijing,"No. 1, Chang\'an Avenue, Beijing",总部 headquarters\r\n'
    '上海 Shanghai,"Lujiazui, Pudong","分部 branch, ""east"" office"\r\n'
)
CSV_CELLS = ["No. 1, Chang'an Avenue, Beijing", 'branch, "east" office', "Lujiazui, Pudong"]

HTML_CONTENT = [
    "员工应在费用发生后三十天内提交报销申请，并附上原始发票。",
    "Employees must submit expense claims within thirty days & attach the original receipts.",
    "国内出差的住宿标准为每晚不超过五百元。",
    "Claims above 10,000 yuan need director approval.",
]
HTML_BOILERPLATE = [
    "cookies",
    "HR portal menu",
    "Sidebar item about parking",
    "All rights reserved",
    "SECRET-TRACKER",
]


def html_page(remote: str = "http://127.0.0.1:9") -> str:
    """A saved intranet page: the policy in an article, wrapped in a cookie banner, navigation,
    a sidebar, a script and a footer; an image and an iframe point at ``remote``."""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>报销政策 | Acme Intranet</title><script>var tracking = "SECRET-TRACKER";</script></head>
<body><div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
Accept all cookies?</div>
<nav class="navbar"><ul><li><a href="/">Home</a></li><li><a href="/hr">HR portal menu</a></li>
</ul></nav>
<aside class="sidebar"><h3>Related</h3><ul><li><a href="/x">Sidebar item about parking</a></li>
</ul></aside>
<main><article><h1>报销政策 Expense policy</h1>
<p>{HTML_CONTENT[0]}{HTML_CONTENT[1].replace("&", "&amp;")}</p>
<h2>差旅 Travel</h2><p>{HTML_CONTENT[2]} Domestic hotel stays are capped at 500 yuan.</p>
<img src="{remote}/tracker.png"><iframe src="{remote}/frame"></iframe>
<h2>审批 Approval</h2><p>超过一万元的报销需要部门总监审批。{HTML_CONTENT[3]}</p>
</article></main>
<footer class="site-footer">&copy; 2024 Acme Corp. All rights reserved. Privacy | Terms</footer>
</body></html>"""


PDF_PAGES = ["第一页：员工应在三十天内提交报销申请。", "第二页：国内出差住宿每晚不超过五百元。"]


def write_chinese_pdf(target: Path | io.BytesIO, pages: list[str] = PDF_PAGES) -> None:
    """A born-digital PDF whose pages carry a Chinese text layer (ReportLab's CID font)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    page = canvas.Canvas(str(target) if isinstance(target, Path) else target)
    for text in pages:
        page.setFont("STSong-Light", 12)
        page.drawString(72, 720, text)
        page.showPage()
    page.save()


SCAN_LINES = [
    "合同编号：HT-2024-0815，签订日期为2024年8月15日。",
    "The Frankfurt datacenter contract renews every twelve months.",
    "付款方式：买方应在收到发票后三十日内支付全部款项。",
    "Termination requires ninety days written notice by either party.",
    "本合同一式两份，双方各执一份，具有同等法律效力。",
    "Invoices are payable in euros to the account named in Annex B.",
]


def scanned_page(dpi: int = 200, point_size: int = 11) -> Image.Image:
    """An A4 page of ``SCAN_LINES`` as a scanner would give it: pixels, no text."""
    scale = dpi / 72
    page = Image.new("RGB", (round(8.27 * dpi), round(11.69 * dpi)), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), round(point_size * scale))
    top = round(72 * scale)
    for line in SCAN_LINES:
        draw.text((round(72 * scale), top), line, fill="black", font=font)
        top += round(point_size * 2 * scale)
    return page


def write_mixed_pdf(path: Path) -> None:
    """Page 1 with a text layer, page 2 a scan: only page 2 needs OCR."""
    from pypdf import PdfReader, PdfWriter

    text_pdf = io.BytesIO()
    write_chinese_pdf(text_pdf, [PDF_PAGES[0]])
    scan_pdf = io.BytesIO()
    scanned_page().save(scan_pdf, format="PDF", resolution=200)
    writer = PdfWriter()
    for source in (text_pdf, scan_pdf):
        source.seek(0)
        for page in PdfReader(source).pages:
            writer.add_page(page)
    with path.open("wb") as out:
        writer.write(out)


def character_error_rate(expected: str, got: str) -> float:
    """Levenshtein distance over the expected length, white space ignored."""
    a = "".join(expected.split())
    b = "".join(got.split())
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1] / max(len(a), 1)
