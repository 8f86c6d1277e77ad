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

_M_MMAP_THRESHOLD = -3
_done = False


def release_large_buffers(threshold: int = 1 << 20) -> bool:
    """Serve allocations of ``threshold`` bytes and more with mmap (Linux/glibc; else no-op).

    Returns True when the setting was applied. Idempotent.
    """
    global _done
    if _done:
        return True
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
    _done = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    return _done
