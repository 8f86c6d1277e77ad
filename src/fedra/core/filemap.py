"""Arrays backed by files on disk instead of process memory.

A big message (a model of hundreds of MB or several GB) can be received into an unlinked
temporary file and decoded over a memory map of it (:class:`FileMap`): its arrays then cost
no anonymous memory, only page cache that the kernel can write back and evict. Pages a
process has read stay in its resident set until it lets them go: code that reads a
read-only mapped array once, from start to end (folding it into a sum, framing it for the
network), calls :func:`release_pages` on each part it is done with, so its RSS stays at a
chunk instead of growing to the whole model.

Nothing here decides *when* a file is used; :mod:`fedra.transport` spools and maps, the
aggregators release what they have folded.
"""

from __future__ import annotations

import mmap
import os
from typing import IO, Any

import numpy as np

PAGE = mmap.PAGESIZE
#: Bytes before a released part that are released with it. The page cache holds a file in
#: folios of up to 2 MiB (Linux 6.x, ext4/xfs), and a fault maps the whole folio around the
#: address: reading the start of a part maps again the end of the part before it, already
#: released. Without this margin a 100 MB model framed in 256 KiB parts by 32 readers keeps
#: most of its pages resident (measured: 56 MiB of 95 MiB).
FOLIO_SPAN = 2 << 20


class FileMap(mmap.mmap):
    """A memory map of a whole file, that keeps the file open (to send it on by handle).

    Made by :func:`map_file` only. ``readonly`` maps may have pages released
    (:func:`release_pages`); copy-on-write maps (``readonly=False``) may be written by their
    user and are never released.
    """

    file: IO[bytes]
    readonly: bool
    address: int

    def __del__(self) -> None:
        # The map holds its own duplicate of the descriptor: the file object can go with it.
        file = getattr(self, "file", None)
        if file is not None:
            file.close()


def map_file(file: IO[bytes], *, readonly: bool = True) -> FileMap:
    """Map the whole of ``file`` (which must not be empty); the map keeps ``file`` open.

    ``readonly=False`` maps it copy-on-write: the arrays over it are writable and writes stay
    in this process (the file is not changed).
    """
    access = mmap.ACCESS_READ if readonly else mmap.ACCESS_COPY
    mapped = FileMap(file.fileno(), 0, access=access)
    mapped.file = file
    mapped.readonly = readonly
    probe = np.frombuffer(mapped, dtype=np.uint8)
    mapped.address = int(probe.__array_interface__["data"][0])
    del probe  # drop the export: the map may be closed later
    return mapped


def map_fd(fd: int, *, readonly: bool = True) -> FileMap:
    """Map the file behind the open descriptor ``fd`` (taken over: closed with the map)."""
    file = os.fdopen(fd, "rb", buffering=0)
    try:
        return map_file(file, readonly=readonly)
    except BaseException:
        file.close()
        raise


def _owner(obj: Any) -> FileMap | None:
    """The FileMap whose memory ``obj`` (an array or memoryview) views, if any."""
    for _ in range(64):  # the base chains numpy and memoryview build are short
        if isinstance(obj, FileMap):
            return obj
        if isinstance(obj, memoryview):
            obj = obj.obj
        elif isinstance(obj, np.ndarray):
            obj = obj.base
        else:
            return None
    return None


def _address(view: memoryview | np.ndarray[Any, Any]) -> int:
    array = view if isinstance(view, np.ndarray) else np.frombuffer(view, dtype=np.uint8)
    return int(array.__array_interface__["data"][0])


def backing(view: memoryview | np.ndarray[Any, Any]) -> tuple[FileMap, int] | None:
    """The read-only FileMap that ``view`` lies in, and where in it ``view`` starts.

    None for memory that is not a read-only file map (including copy-on-write maps, whose
    pages may differ from the file) and for empty views.
    """
    nbytes = view.nbytes
    if not nbytes:
        return None
    owner = _owner(view)
    if owner is None or not owner.readonly or owner.closed:
        return None
    offset = _address(view) - owner.address
    if offset < 0 or offset + nbytes > len(owner):  # pragma: no cover - a view lies in its map
        return None
    return owner, offset


def release_pages(view: memoryview | np.ndarray[Any, Any]) -> None:
    """Drop ``view``'s pages from this process's resident memory, if it is part of a
    read-only FileMap; otherwise do nothing.

    For a reader going through a map once, front to back: the pages from
    :data:`FOLIO_SPAN` bytes before ``view`` to its end go (whole pages, rounded outwards).
    The data stays in the file (and usually in the page cache): reading any of it again maps
    the pages back, so releasing pages another thread is reading only costs it a fault.
    Call it on parts that were just read; it never touches memory that can be written.
    """
    found = backing(view)
    if found is None:
        return
    owner, offset = found
    start = max(0, offset - FOLIO_SPAN) // PAGE * PAGE
    end = min(len(owner), -(-(offset + view.nbytes) // PAGE) * PAGE)
    if end > start:
        owner.madvise(mmap.MADV_DONTNEED, start, end - start)


def file_region(parts: list[memoryview | bytes]) -> tuple[FileMap, int, int] | None:
    """Where ``parts`` lie, in order and back to back, in one read-only FileMap.

    ``parts`` are the body of an encoded frame (arrays' memory and the zero padding between
    them). Returns the map, the offset of the first byte and the total length, or None when
    they are not one contiguous region of one map (then they must be sent as bytes). Padding
    parts are checked against the bytes at their place in the map.
    """
    owner: FileMap | None = None
    start = 0
    position = 0
    for part in parts:
        if not isinstance(part, memoryview):
            if owner is None:
                return None
            end = position + len(part)
            if owner[position:end] != part:
                return None
            position = end
            continue
        found = backing(part)
        if found is None:
            return None
        if owner is None:
            owner, start = found
            position = start
        elif found[0] is not owner or found[1] != position:
            return None
        position += part.nbytes
    if owner is None:
        return None
    return owner, start, position - start
