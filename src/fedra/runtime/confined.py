"""The only files admin commands read: a participant's own log and the files of one job.

``cat``, ``tail``, ``head`` and ``grep`` name a file as either ``log.txt`` (the participant's
own log) or ``JOB_ID/PATH`` (a file of that job's workspace: on the server the job's run folder
in the store, on a site ``jobs/JOB_ID/``). Nothing else can be named: not ``startup/`` (keys),
``local/`` (policies), the store (``jobs.db``, zips), the spool, or a job by any other path.
The server parses the name, authorizes it (view on the participant or on the job) and relays
it; a site parses and confines it again itself, so neither trusts the other's check.

Names are refused when they hold NUL or control characters, backslashes, ``..``, ``.`` or
empty parts, or start with ``/``. The file is opened component by component with
``O_NOFOLLOW`` from a directory descriptor, and the opened descriptor must be a regular file
with one link: a symlink or hard link planted by job code reaches nothing, and a swap between
check and use changes nothing (what is read is what was checked). At most
:data:`MAX_READ_BYTES` (the file's end) are read. Every refusal is a :class:`FileRefused`:
one line, never a dead process.

:func:`open_regular` and :func:`regular_files` serve ``download_job`` the same way;
``ls`` names a folder as nothing (the workspace: its log and its jobs), ``JOB_ID`` or
``JOB_ID/PATH`` (:func:`parse_folder`), opened the same way (:func:`open_folder`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedra.core import ConfigError

#: The participant's own log, as ``cat``/``tail`` name it.
LOG_FILE = "log.txt"
#: Most bytes read of one file (its end).
MAX_READ_BYTES = 256 * 1024
#: Longest file name accepted, and most path parts.
MAX_NAME, MAX_DEPTH = 512, 16
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
#: Folders of a kit: never a job id (a name under them is refused, not looked up as a job).
_KIT_FOLDERS = frozenset({"startup", "local", "store", "spool", "jobs", "transfer"})
_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FileRefused(ConfigError):
    """A file name outside the allow-list, malformed, a link, or not a readable file."""


@dataclass(frozen=True)
class FileRef:
    """A file an admin may name: the participant's log (``job_id`` None) or a job's file."""

    job_id: str | None
    parts: tuple[str, ...]

    @property
    def is_log(self) -> bool:
        """Whether the file is a log (the participant's, or a job's ``*.log`` / ``log.txt``)."""
        name = self.parts[-1]
        return self.job_id is None or name == LOG_FILE or name.endswith(".log")

    @property
    def name(self) -> str:
        """The name as the admin gave it."""
        return "/".join(self.parts if self.job_id is None else (self.job_id, *self.parts))


def _split(name: object, what: str = "file") -> tuple[str, ...]:
    """The parts of a name from outside; FileRefused for anything but plain relative parts."""
    if not isinstance(name, str) or not name:
        raise FileRefused(f"{what} must be a non-empty string, got {_show(name)}")
    if len(name) > MAX_NAME or _BAD_CHARS.search(name):
        raise FileRefused(
            f"{what} name refused (control characters, backslash or length): {_show(name)}"
        )
    if name.startswith("/"):
        raise FileRefused(f"{what} name refused: absolute paths are not allowed: {_show(name)}")
    parts = tuple(name.split("/"))
    if len(parts) > MAX_DEPTH or any(p in ("", ".", "..") for p in parts):
        raise FileRefused(f"{what} name refused: empty, '.' or '..' parts: {_show(name)}")
    return parts


def _is_job_id(part: str) -> bool:
    return bool(_JOB_ID.fullmatch(part)) and part not in _KIT_FOLDERS


@dataclass(frozen=True)
class FolderRef:
    """A folder an admin may list: the workspace (``job_id`` None: its log and its jobs) or a
    folder of one job (``parts`` under the job's folder; empty: the job's folder)."""

    job_id: str | None
    parts: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name as the admin gave it ('' for the workspace)."""
        return "/".join(() if self.job_id is None else (self.job_id, *self.parts))


def parse_folder(name: object) -> FolderRef:
    """The allow-listed folder ``name`` designates (None or '': the workspace); FileRefused
    (one line) for any other: ``JOB_ID`` or ``JOB_ID/PATH`` only."""
    if name is None or name == "":
        return FolderRef(None)
    parts = _split(name, "folder")
    if not _is_job_id(parts[0]):
        raise FileRefused(
            f"folder {_show(name)} is not listable: name nothing (the workspace), JOB_ID or "
            "JOB_ID/PATH (a folder of a job)"
        )
    return FolderRef(parts[0], parts[1:])


def parse_file(name: object) -> FileRef:
    """The allow-listed file ``name`` designates; FileRefused (one line) for any other."""
    parts = _split(name)
    if parts == (LOG_FILE,):
        return FileRef(None, parts)
    if len(parts) >= 2 and _is_job_id(parts[0]):
        return FileRef(parts[0], parts[1:])
    raise FileRefused(
        f"file {_show(name)} is not readable: name {LOG_FILE} (this participant's log) "
        "or JOB_ID/PATH (a file of a job)"
    )


def read_end(root: Path, parts: tuple[str, ...], max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The last ``max_bytes`` of the regular file ``root/parts`` (links refused)."""
    fd = open_regular(root, parts)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - max_bytes)
        chunks: list[bytes] = []
        while start < size:
            chunk = os.pread(fd, min(size - start, 1 << 20), start)
            if not chunk:
                break
            chunks.append(chunk)
            start += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def cat_text(root: Path, parts: tuple[str, ...]) -> str:
    """``cat``: the end of the file as text (undecodable bytes replaced)."""
    return read_end(root, parts).decode("utf-8", errors="replace")


def tail_text(root: Path, parts: tuple[str, ...], lines: int) -> str:
    """``tail``: the last ``lines`` lines of the file."""
    return "\n".join(cat_text(root, parts).splitlines()[-lines:])


def open_folder(root: Path, parts: tuple[str, ...]) -> int:
    """A read-only descriptor of the folder ``root/parts``, each part opened without
    following links. FileRefused otherwise (the caller closes it)."""
    shown = "/".join(parts)
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError as exc:
        raise FileRefused(f"no folder {_show(shown)}: {exc.strerror}") from exc
    for part in parts:
        try:
            next_fd = _open_at(dir_fd, part, os.O_RDONLY | os.O_DIRECTORY, shown)
        finally:
            os.close(dir_fd)
        dir_fd = next_fd
    return dir_fd


def open_regular(root: Path, parts: tuple[str, ...]) -> int:
    """A read-only descriptor of ``root/parts``: each part opened without following links,
    the file a regular file with one link. FileRefused otherwise (the caller closes it)."""
    shown = "/".join(parts)
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError as exc:
        raise FileRefused(f"no file {_show(shown)}: {exc.strerror}") from exc
    try:
        for part in parts[:-1]:
            next_fd = _open_at(dir_fd, part, os.O_RDONLY | os.O_DIRECTORY, shown)
            os.close(dir_fd)
            dir_fd = next_fd
        fd = _open_at(dir_fd, parts[-1], os.O_RDONLY | os.O_NONBLOCK, shown)
    finally:
        os.close(dir_fd)
    reason = unsafe(os.fstat(fd))
    if reason is not None:
        os.close(fd)
        raise FileRefused(f"file {_show(shown)} refused: {reason}")
    return fd


def unsafe(st: os.stat_result) -> str | None:
    """Why an opened file may not be read (not regular, or hard-linked); None if it may."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return f"a hard link ({st.st_nlink} names)"
    return None


def regular_files(root: Path, skipped: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """(relative name, open descriptor) of each safe regular file under ``root``, sorted.

    Directories are walked without following links (:func:`os.fwalk`); each file is opened
    with ``O_NOFOLLOW`` and checked on its descriptor. Links, hard links and special files
    are skipped (and named in ``skipped``). The caller closes each descriptor.
    """
    for top, dirs, files, top_fd in os.fwalk(root, follow_symlinks=False):
        dirs.sort()
        rel = Path(top).relative_to(root)
        for name in sorted(files):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=top_fd)
            except OSError as exc:  # a link (ELOOP), or gone
                _skip(skipped, rel / name, "a link" if exc.errno == errno.ELOOP else exc.strerror)
                continue
            reason = unsafe(os.fstat(fd))
            if reason is not None:
                os.close(fd)
                _skip(skipped, rel / name, reason)
                continue
            yield (rel / name).as_posix(), fd


def _skip(skipped: list[str] | None, path: Path, reason: str | None) -> None:
    if skipped is not None:
        skipped.append(f"{path.as_posix()} ({reason})")


def _open_at(dir_fd: int, part: str, flags: int, shown: str) -> int:
    try:
        return os.open(part, flags | _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise FileRefused(f"no file {_show(shown)}") from exc
    except OSError as exc:
        why = "a link" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise FileRefused(f"file {_show(shown)} refused: {why}") from exc


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
