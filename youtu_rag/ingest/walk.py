"""Which files an index run reads: the supported files inside the given roots, and nothing else.

A folder may hold symbolic links; followed blindly, ``notes.md -> /etc/passwd`` puts a system
file into a searchable index. So a link is followed only when its target lies inside one of the
roots the run was given (a root folder, or a file named on the command line), and a file reached
through several links is read once, under its real path. Links that lead outside, or nowhere,
are reported as skipped. Hidden files and folders (``.git``, ``.youtu_rag``) are left out, and so
is anything that is not a regular file (a FIFO would block the run forever).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from youtu_rag.ingest.formats import SUPPORTED_SUFFIXES

# The lone surrogates a name's undecodable bytes become under "surrogateescape".
_UNDECODED = re.compile("[\udc80-\udcff]")


@dataclass
class Found:
    """What a walk found: the files to read, and what it left out with the reason."""

    files: list[Path] = field(default_factory=list)
    """Real (resolved) paths of the supported files, sorted, each once."""
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """(path as found, reason) of links not followed and entries that could not be listed."""
    roots: list[Path] = field(default_factory=list)
    """The given folders and files, resolved."""
    unsupported: dict[str, int] = field(default_factory=dict)
    """Regular files of types that are not read, counted by suffix (``(none)`` without one)."""


def source_name(path: str | os.PathLike[str]) -> str:
    """``path`` as the text stored in the index and printed to the user: one per file.

    A file name that is not valid UTF-8 (any bytes are allowed on Linux) shows its odd bytes as
    ``\\xNN``, so the result always encodes and Chroma can store and filter on it; a backslash
    in the name is doubled, so the escape is reversible (:func:`source_path`) and a file
    literally named ``bad\\xff.md`` (``bad\\\\xff.md``) is not the one whose name holds the
    byte 0xFF. A path that is valid UTF-8 and has no backslash is its own source.
    """
    text = os.fsencode(path).decode("utf-8", errors="surrogateescape")
    if "\\" not in text and not _UNDECODED.search(text):
        return text
    return _UNDECODED.sub(
        lambda match: f"\\x{ord(match.group()) - 0xDC00:02x}", text.replace("\\", "\\\\")
    )


def source_path(source: str) -> Path:
    """The path a :func:`source_name` names (its inverse)."""
    if "\\" not in source:
        return Path(source)
    raw = re.sub(
        rb"\\(\\|x([0-9a-f]{2}))",
        lambda match: bytes([int(match.group(2), 16)]) if match.group(2) else b"\\",
        source.encode("utf-8"),
    )
    return Path(os.fsdecode(raw))


def find_files(paths: Iterable[str | os.PathLike[str]]) -> Found:
    """The supported files among ``paths`` and, recursively, inside the folders among them.

    A path that does not exist, or a named file of an unsupported type, is an error.
    """
    given = [Path(path) for path in paths]
    found = Found()
    for path in given:
        if not path.exists():
            raise FileNotFoundError(f"{source_name(path)}: no such file or folder")
        if not path.is_dir() and path.resolve().suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ValueError(
                f"{source_name(path)}: unsupported file type; use one of "
                f"{sorted(SUPPORTED_SUFFIXES)}"
            )
        found.roots.append(path.resolve())
    files: set[Path] = set()
    walked: set[Path] = set()
    for path, root in zip(given, found.roots, strict=True):
        if root.is_dir():
            _walk(root, found, files, walked)
        else:
            _add_file(path, root, found, files)
    found.files = sorted(files)
    return found


def _inside(target: Path, roots: list[Path]) -> bool:
    return any(target == root or target.is_relative_to(root) for root in roots)


def _hidden(target: Path, roots: list[Path]) -> bool:
    """Whether ``target`` is hidden below every root that holds it."""
    holders = [root for root in roots if target == root or target.is_relative_to(root)]
    return all(
        any(part.startswith(".") for part in target.relative_to(root).parts) for root in holders
    )


def _walk(start: Path, found: Found, files: set[Path], walked: set[Path]) -> None:
    stack = [start]
    while stack:
        folder = stack.pop()
        if folder in walked:
            continue
        walked.add(folder)
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name, reverse=True)
        except OSError as error:
            found.skipped.append((folder, f"cannot list the folder ({error.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                target = _follow(path, found)
                if target is None:
                    continue
                if target.is_dir():
                    stack.append(target)
                else:
                    _add_file(path, target, found, files)
            elif entry.is_dir(follow_symlinks=False):
                stack.append(path)
            else:
                _add_file(path, path, found, files)


def _follow(link: Path, found: Found) -> Path | None:
    """The real path of a link's target if it may be followed, else None (reported)."""
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        found.skipped.append((link, "broken symbolic link"))
        return None
    if not _inside(target, found.roots):
        found.skipped.append(
            (link, f"symbolic link to {source_name(target)}, outside the indexed folders")
        )
        return None
    if _hidden(target, found.roots):
        return None
    return target


def _add_file(path: Path, real: Path, found: Found, files: set[Path]) -> None:
    """Add ``real`` (the file ``path`` is, or leads to) if it is a supported regular file; count
    a regular file of another type."""
    supported = real.suffix.lower() in SUPPORTED_SUFFIXES
    try:
        mode = real.stat().st_mode
    except OSError as error:
        if supported:
            found.skipped.append((path, f"cannot read it ({error.strerror})"))
        return
    if not stat.S_ISREG(mode):
        if supported:
            found.skipped.append((path, "not a regular file"))
        return
    if not supported:
        suffix = real.suffix.lower() or "(none)"
        found.unsupported[suffix] = found.unsupported.get(suffix, 0) + 1
        return
    files.add(real.resolve())
