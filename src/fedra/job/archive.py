"""Job zips: pack a job folder deterministically, and unpack untrusted zips safely.

A job zip arrives from outside (an admin's upload), so :func:`unzip_job` treats it as hostile:
every entry name is checked (no absolute paths, no ``..``, no drive letters or backslashes),
links and special files are refused, sizes are bounded twice (the sizes the zip declares, then
the bytes actually written, because zip bombs lie) and so is the number of entries. The archive
itself is bounded too: at most ``max_archive_bytes``, and every byte of it belongs to an entry,
the central directory or its end record (no junk before, between or after the entries, where a
zip can hide any amount of data that would be stored and sent to every site). Files are
extracted into a temporary folder next to the destination and renamed into place at the end, so
a refused zip leaves nothing behind. Every refusal is a :class:`JobArchiveError` naming the
entry.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from fedra.core import META_FILE, ConfigError, JobValidationError
from fedra.core.safezip import (
    CHUNK,
    MAX_JOB_BYTES,
    UnsafeEntry,
    entry_path,
    extract_entries,
)

#: Default bound on the number of entries in a job zip.
MAX_JOB_FILES = 10_000
#: Bytes a data descriptor may take after an entry's data (zip64, with its signature).
_DESCRIPTOR_BYTES = 24
_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_BYTES = 30

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


class JobArchiveError(JobValidationError):
    """A job zip is unsafe or malformed; ``entry`` names the offending entry."""

    def __init__(self, entry: str, expected: str, got: object = None) -> None:
        self.entry = entry
        super().__init__("job zip", entry, expected, got)


# --------------------------------------------------------------------------- packing


def zip_job(folder: Path) -> bytes:
    """Zip the job folder ``folder`` (meta.json at the root of the zip), deterministically.

    Entries are sorted and carry a fixed time stamp, so the same folder always gives the same
    bytes. ``__pycache__`` folders, ``.pyc`` files and hidden files are skipped. Links that point
    inside the folder are stored as the files they point to; links that point outside it (or
    back to a folder above them) are refused with a :class:`ConfigError`.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"job folder {root} does not exist")
    if not (root / META_FILE).is_file():
        raise JobValidationError(str(root / META_FILE), "", "this file to exist")
    real_root = root.resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _add_dir(zf, root, PurePosixPath(), real_root, (real_root,))
    return buffer.getvalue()


def _add_dir(
    zf: zipfile.ZipFile,
    path: Path,
    arc: PurePosixPath,
    real_root: Path,
    stack: tuple[Path, ...],
) -> None:
    for child in sorted(path.iterdir(), key=lambda p: p.name):
        name = child.name
        if name.startswith(".") or name in _SKIPPED_DIRS or child.suffix in _SKIPPED_SUFFIXES:
            continue
        child_arc = arc / name
        real = child.resolve()
        if child.is_symlink() and not real.is_relative_to(real_root):
            raise ConfigError(
                f"{child}: links outside the job folder are refused (it points to {real})"
            )
        if child.is_dir():
            if real in stack:
                raise ConfigError(f"{child}: a link back to a folder above it is refused")
            info = zipfile.ZipInfo(f"{child_arc}/", _ZIP_TIME)
            info.external_attr = (stat.S_IFDIR | 0o755) << 16
            zf.writestr(info, b"")
            _add_dir(zf, child, child_arc, real_root, (*stack, real))
        elif child.is_file():
            mode = 0o755 if os.access(real, os.X_OK) else 0o644
            info = zipfile.ZipInfo(str(child_arc), _ZIP_TIME)
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with real.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        else:
            raise ConfigError(f"{child}: only regular files and folders can be in a job")


# --------------------------------------------------------------------------- unpacking


def unzip_job(
    data: bytes,
    dest: Path,
    *,
    max_bytes: int = MAX_JOB_BYTES,
    max_files: int = MAX_JOB_FILES,
    max_archive_bytes: int = MAX_JOB_BYTES,
) -> Path:
    """Extract the job zip ``data`` into ``dest`` (which must not exist, or be empty).

    ``max_bytes`` bounds the unpacked size, ``max_archive_bytes`` the zip itself. A zip
    holding a single top folder with meta.json in it is unwrapped, so that
    ``dest/meta.json`` exists either way. Anything unsafe or malformed raises
    :class:`JobArchiveError` naming the entry, and leaves ``dest`` as it was.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or dest.is_symlink() or any(dest.iterdir())):
        raise ConfigError(f"cannot extract a job into {dest}: it exists and is not an empty folder")
    if len(data) > max_archive_bytes:
        raise JobArchiveError("(archive)", f"at most {max_archive_bytes} bytes", len(data))
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise JobArchiveError("(archive)", "a zip file", str(exc)) from exc
    with zf:
        plan = _plan(zf.infolist(), max_bytes, max_files)
        check_layout(zf, data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.unzip-"))
        try:
            _extract(zf, plan, tmp, max_bytes)
            mode = stat.S_IMODE(dest.stat().st_mode) if dest.exists() else 0o755
            tmp.chmod(mode)
            if dest.exists():
                dest.rmdir()
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _plan(
    infos: list[zipfile.ZipInfo], max_bytes: int, max_files: int
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every entry before anything is written; return (entry, relative path) pairs."""
    if len(infos) > max_files:
        raise JobArchiveError("(archive)", f"at most {max_files} entries", len(infos))
    declared = 0
    seen: dict[str, str] = {}
    files: set[PurePosixPath] = set()
    parents: set[PurePosixPath] = set()
    checked: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in infos:
        path = _check_entry(info)
        key = str(path).casefold()
        if key in seen:
            raise JobArchiveError(
                info.filename, "unique entry names", f"a duplicate of {seen[key]}"
            )
        seen[key] = info.filename
        parents.update(path.parents)
        if not info.is_dir():
            files.add(path)
            declared += info.file_size
            if declared > max_bytes:
                raise JobArchiveError(
                    info.filename, f"at most {max_bytes} bytes uncompressed in all", declared
                )
        checked.append((info, path))
    if clash := sorted(files & parents):
        raise JobArchiveError(str(clash[0]), "either a file or a folder, not both")
    return _unwrap(checked)


def check_layout(zf: zipfile.ZipFile, data: bytes) -> None:
    """Refuse bytes of ``data`` that no entry accounts for (JobArchiveError naming where).

    Each entry's local header must follow the previous entry's data (a data descriptor
    between them aside), the first at offset 0, and the central directory must follow the
    last entry: a zip with junk before, between or after its entries is refused.
    """
    view = memoryview(data)
    expected, slack = 0, 0
    for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
        gap = info.header_offset - expected
        if not 0 <= gap <= slack:
            where = "the start of the zip" if expected == 0 else "right after the previous one"
            raise JobArchiveError(info.filename, f"an entry at {where}", f"{gap} bytes of junk")
        start = info.header_offset
        header = bytes(view[start : start + _LOCAL_HEADER_BYTES])
        if len(header) < _LOCAL_HEADER_BYTES or header[:4] != _LOCAL_HEADER:
            raise JobArchiveError(info.filename, "a local file header at its offset")
        name_len = int.from_bytes(header[26:28], "little")
        extra_len = int.from_bytes(header[28:30], "little")
        expected = start + _LOCAL_HEADER_BYTES + name_len + extra_len + info.compress_size
        slack = _DESCRIPTOR_BYTES if info.flag_bits & 0x08 else 0
    gap = int(getattr(zf, "start_dir", expected)) - expected
    if not 0 <= gap <= slack:
        raise JobArchiveError(
            "(archive)", "the central directory right after the last entry", f"{gap} bytes"
        )


def _check_entry(info: zipfile.ZipInfo) -> PurePosixPath:
    try:
        return entry_path(info)
    except UnsafeEntry as exc:
        raise JobArchiveError(exc.entry, exc.expected, exc.got) from None


def _unwrap(
    checked: list[tuple[zipfile.ZipInfo, PurePosixPath]],
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Strip a single top folder holding meta.json; require meta.json at the new root."""
    paths = {path for info, path in checked if not info.is_dir()}
    if PurePosixPath(META_FILE) in paths:
        return checked
    tops = {path.parts[0] for _, path in checked}
    if len(tops) == 1:
        top = tops.pop()
        if PurePosixPath(top, META_FILE) in paths:
            return [
                (info, path.relative_to(top))
                for info, path in checked
                if path != PurePosixPath(top)
            ]
    raise JobArchiveError(
        META_FILE, "a meta.json at the top of the zip, or in its single top folder"
    )


def _extract(
    zf: zipfile.ZipFile,
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    tmp: Path,
    max_bytes: int,
) -> None:
    """Write every planned entry under ``tmp``, counting the bytes actually written."""
    try:
        extract_entries(zf, plan, tmp, max_bytes)
    except UnsafeEntry as exc:
        raise JobArchiveError(exc.entry, exc.expected, exc.got) from exc


# --------------------------------------------------------------------------- either


@contextlib.contextmanager
def job_folder(path: Path, *, max_bytes: int = MAX_JOB_BYTES) -> Iterator[Path]:
    """The job folder at ``path``, or, when ``path`` is a zip of one, that zip unpacked into a
    temporary folder (removed at the end of the block) the way the server unpacks an upload:
    :func:`unzip_job`, with its limits (``max_bytes`` for the zip and its contents)."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        yield path  # a missing folder is load_job's to name
        return
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path} is a file, not a job folder or a zip of one")
    size = path.stat().st_size
    if size > max_bytes:
        raise JobArchiveError("(archive)", f"at most {max_bytes} bytes", size)
    with tempfile.TemporaryDirectory(prefix="fedra-job-") as tmp:
        yield unzip_job(
            path.read_bytes(),
            Path(tmp) / path.stem,
            max_bytes=max_bytes,
            max_archive_bytes=max_bytes,
        )
