"""Checking and extracting zip entries that came from outside (job zips, downloaded results).

One set of rules for every zip Fedra unpacks: relative '/'-separated names without '..',
empty or '.' parts, backslashes or drive letters; regular files and folders only (no links,
devices or pipes); no encryption; never more bytes than the entry declares or the caller
allows. Callers plan the whole archive first (duplicates, sizes) and extract into a fresh
folder, so a refused zip leaves nothing behind.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

#: Bytes read and written at a time while extracting.
CHUNK = 1 << 20
#: Default bound on what a job may unpack: its zip's entries, or the arrays of its model files.
MAX_JOB_BYTES = 1 << 30
#: Default bound on the bytes of a job zip itself (the server's ``max_job_bytes`` setting).
MAX_JOB_ARCHIVE_BYTES = 256 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeEntry(ValueError):
    """An entry breaks the rules: ``entry`` names it, ``expected`` says what was wanted."""

    def __init__(self, entry: str, expected: str, got: object = None) -> None:
        self.entry = entry
        self.expected = expected
        self.got = got
        #: What is wrong, without the entry's name: "expected …[, got …]".
        self.detail = f"expected {expected}" + (f", got {got!r}" if got is not None else "")
        super().__init__(f"{entry}: {self.detail}")


def entry_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The entry's path, checked against the rules (UnsafeEntry otherwise)."""
    name = info.filename
    if not name or any(ord(c) < 0x20 for c in name):
        raise UnsafeEntry(repr(name), "a non-empty name without control characters")
    if "\\" in name or _DRIVE.match(name):
        raise UnsafeEntry(
            name, "a relative '/'-separated path (backslashes and drive letters are refused)"
        )
    if name.startswith("/"):
        raise UnsafeEntry(name, "a relative path (absolute paths are refused)")
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        raise UnsafeEntry(name, "a path inside the archive ('..' is refused)")
    if any(part in ("", ".") for part in parts):
        raise UnsafeEntry(name, "a path without empty or '.' components")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise UnsafeEntry(name, "a regular file or folder (links are refused)")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeEntry(name, "a regular file or folder", oct(kind))
    if info.flag_bits & 0x1:
        raise UnsafeEntry(name, "an unencrypted entry (encrypted entries are refused)")
    return PurePosixPath(*parts)


def extract_entries(
    zf: zipfile.ZipFile,
    plan: Sequence[tuple[zipfile.ZipInfo, PurePosixPath]],
    dest: Path,
    max_bytes: int,
) -> int:
    """Write the planned entries under ``dest``, counting the bytes actually written.

    Returns the number of files written. UnsafeEntry when an entry holds more bytes than it
    declares, the total exceeds ``max_bytes``, or its data is corrupt.
    """
    total = 0
    count = 0
    for info, rel in plan:
        target = dest.joinpath(*rel.parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as src, target.open("xb") as dst:
                while chunk := src.read(CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size or total > max_bytes:
                        raise UnsafeEntry(
                            info.filename,
                            f"no more bytes than declared ({info.file_size}) and at most "
                            f"{max_bytes} in all",
                            "more",
                        )
                    dst.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise UnsafeEntry(info.filename, "an intact entry", str(exc)) from exc
        if written != info.file_size:
            raise UnsafeEntry(
                info.filename, f"{info.file_size} bytes as declared", f"{written} bytes"
            )
        count += 1
    return count
