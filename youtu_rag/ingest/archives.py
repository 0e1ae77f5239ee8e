"""Office files are zip archives of XML: checked before any converter opens them.

Whoever wrote the file chose its bytes, so before python-docx, python-pptx or openpyxl parse it:

- a zip bomb (members that inflate far beyond the file, or past a total bound) is refused
  from the archive's directory, before anything is inflated;
- XML with a document type declaration is refused: Office Open XML never has one, and it is
  what entity expansion ("billion laughs") and external entities (an entity naming a local
  file or a URL) need;
- an encrypted or password-protected document (a compound file, not a zip) and a legacy
  binary ``.doc``/``.xls``/``.ppt`` saved under a new name are named as such.

The libraries never run macros (a ``.xlsm`` is read for its values), and none of them fetches
anything: a converter reads the archive it is given and nothing else.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from youtu_rag.ingest.parts import UnreadableFileError

__all__ = ["MAX_INFLATED_BYTES", "MAX_RATIO", "check_office_archive"]

#: Bytes all members may inflate to together.
MAX_INFLATED_BYTES = 512 << 20
#: Inflated size over compressed size beyond which a large member is a bomb (text XML
#: compresses about 10:1; 100:1 is already extreme).
MAX_RATIO = 200
_RATIO_FLOOR = 1 << 20  # members smaller than this inflate to little whatever their ratio
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_XML_SCAN_BYTES = 1 << 16


def check_office_archive(path: Path) -> None:
    """Refuse ``path`` unless it is a plain Office Open XML archive (see the module notes).

    Raises:
        UnreadableFileError: why it is refused.
    """
    with path.open("rb") as handle:
        head = handle.read(len(_OLE_SIGNATURE))
    if head == _OLE_SIGNATURE:
        raise UnreadableFileError(
            "encrypted or password-protected Office file (or a legacy binary .doc/.xls/.ppt): "
            "save it unprotected in the current format"
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise UnreadableFileError(f"not an Office Open XML file ({error})") from error
    with archive:
        members = archive.infolist()
        total = sum(member.file_size for member in members)
        if total > MAX_INFLATED_BYTES:
            raise UnreadableFileError(
                f"zip bomb: its members inflate to {total} bytes (at most {MAX_INFLATED_BYTES})"
            )
        for member in members:
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > _RATIO_FLOOR and ratio > MAX_RATIO:
                raise UnreadableFileError(
                    f"zip bomb: {member.filename} inflates {ratio:.0f} times (at most {MAX_RATIO})"
                )
            if member.filename.lower().endswith((".xml", ".rels")):
                _refuse_doctype(archive, member)


def _refuse_doctype(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    """A declaration comes before the root element: the member's first bytes tell."""
    with archive.open(member) as stream:
        start = stream.read(_XML_SCAN_BYTES).lower()
    if b"<!doctype" in start or b"<!entity" in start:
        raise UnreadableFileError(
            f"{member.filename} declares a document type (entities): refused, as Office files "
            "never need one"
        )
