"""``ls``, ``head`` and ``grep`` on a participant's workspace, confined and bounded.

What may be named is decided by :mod:`fedra.runtime.confined` (the participant's ``log.txt``
and the folders of jobs, opened part by part without following links); this module only
reads what was opened there, within bounds:

- ``ls``: at most :data:`MAX_ENTRIES` entries, :data:`MAX_LIST_DEPTH` folders deep; links
  are listed as links, never followed; names that are not printable are escaped;
- ``head``: the first :data:`~fedra.runtime.confined.MAX_READ_BYTES` of the file;
- ``grep``: the last :data:`GREP_MAX_BYTES` of the file, lines cut to :data:`MAX_LINE`
  characters, at most :data:`MAX_MATCHES` lines shown. Plain text is searched here; a
  regular expression runs in a separate Python process (no shell) with a CPU, memory and
  wall-clock limit, so a pattern that backtracks for ever costs its own process a few
  seconds, never the participant.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fedra.core.admin_results import DirEntry
from fedra.runtime.confined import (
    MAX_READ_BYTES,
    FileRefused,
    open_folder,
    open_regular,
    read_end,
)

#: Most entries one ``ls`` answers.
MAX_ENTRIES = 2000
#: Deepest folder ``ls -R`` enters (below the folder listed).
MAX_LIST_DEPTH = 8
#: Most bytes ``grep`` searches (the file's end).
GREP_MAX_BYTES = 4 << 20
#: Longest line ``grep`` matches and shows (longer lines are cut).
MAX_LINE = 4096
#: Most matching lines ``grep`` shows.
MAX_MATCHES = 1000
#: Limits of the process that runs a regular expression.
GREP_CPU_S, GREP_WALL_S, GREP_MEMORY = 2, 5.0, 512 << 20
_REGEX_CHARS = re.compile(r"[.^$*+?{}\[\]\\|()]")
_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

# The child reads {"pattern", "icase", "lines", "max"} on stdin and writes the indexes of the
# matching lines. Only the standard library, isolated (-I -S): nothing of the caller's path.
_WORKER = """
import json, re, resource, sys
cpu, memory = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
request = json.loads(sys.stdin.buffer.read())
rx = re.compile(request["pattern"], re.IGNORECASE if request["icase"] else 0)
hits = []
for i, line in enumerate(request["lines"]):
    if rx.search(line):
        hits.append(i)
        if len(hits) >= request["max"]:
            break
sys.stdout.write(json.dumps(hits))
"""


def shown_name(name: str) -> str:
    """A file name for a terminal: escaped unless every character is printable."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def entry_of(name: str, st: os.stat_result) -> DirEntry:
    """One listing entry from an ``lstat`` (links are links)."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return DirEntry(shown_name(name), "link", round(st.st_mtime, 3))
    if stat.S_ISDIR(mode):
        return DirEntry(shown_name(name), "dir", round(st.st_mtime, 3))
    kind = "file" if stat.S_ISREG(mode) else "other"
    return DirEntry(shown_name(name), kind, round(st.st_mtime, 3), st.st_size)


@dataclass
class FolderWalk:
    entries: list[DirEntry]
    recursive: bool
    truncated: bool = False


def list_folder(root: Path, parts: tuple[str, ...], recursive: bool = False) -> FolderWalk:
    """The entries of the folder ``root/parts`` (with ``recursive``, of its sub-folders too,
    named by their path below it), sorted, bounded."""
    walk = FolderWalk([], recursive)
    fd = open_folder(root, parts)
    try:
        _list(fd, "", 0, walk)
    finally:
        os.close(fd)
    return walk


def _list(fd: int, prefix: str, depth: int, walk: FolderWalk) -> None:
    names = sorted(os.listdir(fd))
    for name in names:
        if len(walk.entries) >= MAX_ENTRIES:
            walk.truncated = True
            return
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue  # gone since it was listed
        entry = entry_of(prefix + name, st)
        walk.entries.append(entry)
        if walk.recursive and entry.kind == "dir":
            if depth + 1 >= MAX_LIST_DEPTH:
                walk.truncated = True
                continue
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError:
                continue  # swapped for a link or gone: not entered
            try:
                _list(sub, f"{prefix}{name}/", depth + 1, walk)
            finally:
                os.close(sub)


def head_text(root: Path, parts: tuple[str, ...], lines: int) -> str:
    """``head``: the first ``lines`` lines of the file (of its first bytes, bounded)."""
    fd = open_regular(root, parts)
    try:
        data = os.pread(fd, MAX_READ_BYTES, 0)
    finally:
        os.close(fd)
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[:lines])


def check_pattern(pattern: str) -> None:
    """FileRefused (one line) for a pattern Python's ``re`` cannot compile."""
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise FileRefused(f"grep: bad pattern {pattern[:80]!r}: {exc}") from None


def grep_text(root: Path, parts: tuple[str, ...], pattern: str, ignore_case: bool) -> str:
    """``grep``: the matching lines of the file's end, each as ``NUMBER:LINE`` (numbers
    counted from the file's start when all of it was searched, else from the first line
    searched, which a first line says)."""
    check_pattern(pattern)
    data = read_end(root, parts, GREP_MAX_BYTES + 1)
    whole = len(data) <= GREP_MAX_BYTES
    text = data[-GREP_MAX_BYTES:].decode("utf-8", errors="replace")
    lines = [line[:MAX_LINE] for line in text.splitlines()]
    if not whole and lines:
        lines = lines[1:]  # the first line is cut: left out
    hits = _matches(pattern, ignore_case, lines)
    out = (
        []
        if whole
        else [f"(searched the last {GREP_MAX_BYTES >> 20} MiB; lines counted from there)"]
    )
    out += [f"{i + 1}:{lines[i]}" for i in hits]
    if len(hits) >= MAX_MATCHES:
        out.append(f"(stopped after {MAX_MATCHES} matching lines)")
    return "\n".join(out)


def _matches(pattern: str, ignore_case: bool, lines: list[str]) -> list[int]:
    if not _REGEX_CHARS.search(pattern):  # plain text: searched here, in linear time
        needle = pattern.casefold() if ignore_case else pattern
        found = (
            i
            for i, line in enumerate(lines)
            if needle in (line.casefold() if ignore_case else line)
        )
        return [i for _, i in zip(range(MAX_MATCHES), found, strict=False)]
    return _regex_matches(pattern, ignore_case, lines)


def _regex_matches(pattern: str, ignore_case: bool, lines: list[str]) -> list[int]:
    """The indexes of the lines ``pattern`` matches, found by a bounded child process."""
    request = json.dumps(
        {"pattern": pattern, "icase": ignore_case, "lines": lines, "max": MAX_MATCHES}
    ).encode()
    command = [sys.executable, "-I", "-S", "-c", _WORKER, str(GREP_CPU_S), str(GREP_MEMORY)]
    try:
        done = subprocess.run(
            command, input=request, capture_output=True, timeout=GREP_WALL_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise FileRefused(f"grep: the pattern took longer than {GREP_WALL_S:g} s") from None
    except OSError as exc:
        raise FileRefused(f"grep: cannot run the pattern: {exc.strerror}") from None
    if done.returncode != 0:
        raise FileRefused(
            f"grep: the pattern was stopped (more than {GREP_CPU_S} s of CPU or "
            f"{GREP_MEMORY >> 20} MiB)"
        )
    try:
        hits = json.loads(done.stdout)
    except ValueError:
        raise FileRefused("grep: the pattern's process answered nonsense") from None
    if not isinstance(hits, list) or not all(
        isinstance(i, int) and 0 <= i < len(lines) for i in hits
    ):
        raise FileRefused("grep: the pattern's process answered nonsense")
    return hits[:MAX_MATCHES]
