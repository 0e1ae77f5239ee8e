"""Hostile documents: each is skipped whole with its reason, or read safely. Nothing is fetched
from the network, nothing is executed, no local file's content enters the index, and memory
stays bounded (sizes are checked before anything is inflated or decoded)."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from tests import documents
from tests.test_stored_destination import Listener
from youtu_rag import YoutuEmbedder
from youtu_rag.index.store import ChromaStore
from youtu_rag.ingest.formats import MAX_DOCUMENT_BYTES
from youtu_rag.ingest.pipeline import IngestReport, ingest

SECRET = "TOP-SECRET-LOCAL-CONTENT 本地机密"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    'package/2006/content-types"></Types>'
)


def office_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        for name, data in members.items():
            archive.writestr(name, data)


def billion_laughs() -> bytes:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return (
        f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    ).encode()


def external_entity_workbook(path: Path, secret_file: Path) -> None:
    """A real workbook whose first sheet's XML declares an entity naming a local file."""
    import openpyxl

    plain = path.with_suffix(".tmp.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["name", "value"])
    book.save(str(plain))
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                declaration = f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "{secret_file.as_uri()}">]>'
                body = data.split(b"?>", 1)[-1]
                data = (b'<?xml version="1.0"?>' + declaration.encode() + body).replace(
                    b"<v>", b"<v>&xxe;", 1
                )
            target.writestr(item, data)
    plain.unlink()


def macro_workbook(path: Path) -> None:
    """A .xlsm: values plus a VBA project (never run: it is not even read)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["宏 Macro", "值 Value"])
    book.active.append(["自动运行 Auto_Open", 42])
    book.save(str(path))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("xl/vbaProject.bin", b'\xd0\xcf\x11\xe0 Sub Auto_Open(): Shell "rm"')


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, minilm: YoutuEmbedder
) -> tuple[IngestReport, dict[str, str], str, Listener]:
    listener = Listener()
    folder = tmp_path_factory.mktemp("hostile")
    secret = tmp_path_factory.mktemp("private") / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    office_zip(folder / "bomb.docx", {"word/document.xml": b" " * (60 << 20)})
    office_zip(folder / "laughs.docx", {"word/document.xml": billion_laughs()})
    external_entity_workbook(folder / "entity.xlsx", secret)
    (folder / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4096)
    macro_workbook(folder / "macro.xlsm")
    (folder / "huge.png").write_bytes(png_claiming(40_000, 40_000))
    (folder / "remote.html").write_text(documents.html_page(listener.url), encoding="utf-8")
    with (folder / "enormous.pptx").open("wb") as sparse:
        sparse.truncate(MAX_DOCUMENT_BYTES + 1)  # no disk used: refused by its size alone
    (folder / "broken.csv").write_text(
        "a,b\n" + "x,y\n" * 3000 + 'bad,"unclosed\nquote\n', encoding="utf-8"
    )
    store = ChromaStore.open(minilm, persist_dir=folder.parent / "hostile_db", collection="hostile")
    report = ingest(store, [folder])
    records = store.collection.get(include=["documents", "metadatas"])
    indexed = " ".join(records["documents"] or [])
    sources = {Path(str(meta["source"])).name for meta in records["metadatas"] or []}
    reasons = {Path(entry.path).name: entry.reason for entry in report.skipped}
    listener.close()
    assert sources == {"macro.xlsm", "remote.html"}, sources
    return report, reasons, indexed, listener


def test_a_zip_bomb_is_refused_from_the_directory(hostile: tuple) -> None:
    assert hostile[1]["bomb.docx"].startswith("zip bomb: word/document.xml inflates")


def test_entities_are_refused_and_no_local_file_enters_the_index(hostile: tuple) -> None:
    _, reasons, indexed, _ = hostile
    assert "declares a document type" in reasons["laughs.docx"]
    assert "declares a document type" in reasons["entity.xlsx"]
    assert SECRET not in indexed and "TOP-SECRET" not in indexed


def test_an_encrypted_office_file_is_named(hostile: tuple) -> None:
    assert hostile[1]["locked.docx"].startswith("encrypted or password-protected Office file")


def test_a_macro_workbook_is_read_for_its_values(hostile: tuple) -> None:
    indexed = hostile[2]
    assert "| 自动运行 Auto_Open | 42 |" in indexed and "Shell" not in indexed


def test_a_decompression_bomb_image_is_refused_before_decoding(hostile: tuple) -> None:
    assert hostile[1]["huge.png"].startswith("decompression bomb: ")
    assert "1600000000 pixels" in hostile[1]["huge.png"]


def test_a_web_page_fetches_nothing(hostile: tuple) -> None:
    _, _, indexed, listener = hostile
    assert documents.HTML_CONTENT[2] in indexed
    assert listener.received == []


def test_sizes_are_checked_before_reading(hostile: tuple) -> None:
    assert hostile[1]["enormous.pptx"].endswith("split it")
    assert str(MAX_DOCUMENT_BYTES) in hostile[1]["enormous.pptx"]


def test_a_file_that_fails_half_way_leaves_nothing(hostile: tuple) -> None:
    report, reasons, indexed, _ = hostile
    assert reasons["broken.csv"].startswith("not valid delimited text (line 3003")
    assert "| x | y |" not in indexed
    assert len(report.skipped) == 7
