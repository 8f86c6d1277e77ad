"""Process memory tuning for model-sized buffers.

glibc serves a large ``malloc`` with ``mmap`` and gives it back on ``free`` — until the first
such free, after which it raises its mmap threshold (up to 32 MiB on 64-bit) and serves later
buffers from per-thread heaps that it rarely returns. With model-sized arrays allocated in
many threads (one per simulated site) the process then keeps every thread's freed buffers:
RSS grows with the number of sites although live memory does not. Pinning the threshold
keeps large buffers on ``mmap``, so freed model memory goes back to the system at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_done = False


def _mallopt(option: int, value: int) -> bool:
    """glibc's ``mallopt``; False where unavailable (not Linux, or not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(option, value))


def release_large_buffers(threshold: int = 1 << 20) -> bool:
    """Serve allocations of ``threshold`` bytes and more with mmap (Linux/glibc; else no-op).

    Returns True when the setting was applied. Idempotent.
    """
    global _done
    if not _done:
        _done = _mallopt(_M_MMAP_THRESHOLD, threshold)
    return _done


def share_heaps(arenas: int = 1) -> bool:
    """Let all threads share ``arenas`` malloc heaps (glibc; else no-op).

    A relaying process receives frames in one thread per connection and frees them in
    another; with a heap per thread (glibc's default, up to 8 per core) each connection's
    thread keeps its own freed frames, so the process holds frames for every connection
    instead of for the few in flight. Call it before threads start. Returns True when set.
    """
    return _mallopt(_M_ARENA_MAX, arenas)


_trim: Callable[[int], int] | None = None
_trim_looked_up = False


def trim_heap() -> bool:
    """Give the free memory of every malloc arena back to the system (glibc ``malloc_trim``).

    Buffers under the mmap threshold (such as the transport's frames, allocated and freed in
    many threads) stay in per-thread arenas after they are freed; a process that relays big
    messages calls this after each one so that its RSS falls back. Returns False where
    unavailable (not glibc); costs about a millisecond per hundred MiB of free memory.
    """
    global _trim, _trim_looked_up
    if not _trim_looked_up:
        _trim_looked_up = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                func = libc.malloc_trim
            except (OSError, AttributeError):  # not glibc
                func = None
            if func is not None:
                func.argtypes = [ctypes.c_size_t]
                func.restype = ctypes.c_int
                _trim = func
    if _trim is None:
        return False
    _trim(0)
    return True
