"""What every workload script shares: the model, the final-model summary, the result line.

Runs inside each system's own virtual environment, so it needs only the standard library
and numpy (which every system installs). The harness (``bench.compare``) passes the model
as a spec string and reads the one line that starts with ``BENCH-RESULT``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

RESULT_PREFIX = "BENCH-RESULT "
MB = 10**6
#: Model specs: name -> (number of float32 arrays, elements per array).
MODELS = {
    "3x3": (1, 9),
    "100MB": (4, 100 * MB // 4 // 4),
    "1GB": (8, 1000 * MB // 4 // 8),
}


#: Initial models: ``zeros`` (the harness's rows) or ``pattern`` (every weight distinct in
#: its neighbourhood: no chunk of the model repeats and it deflates poorly, so a system that
#: deduplicates or compresses what it sends moves the whole model; ``bench.wan_peers``).
INITS = ("zeros", "pattern")
#: Elements per slice when a pattern is made or subtracted (bounded extra memory).
SLICE = 1 << 20


def pattern(start: int, count: int) -> np.ndarray:
    """Elements ``start``..``start+count`` of the pattern: a multiplicative hash of the index,
    its top 16 bits as float32 in [0, 256) in steps of 1/256. Few enough bits that adding
    whole numbers and summing a few hundred sites' results in float32 stays exact (the final
    model is the pattern plus the number of rounds, exactly, also where a peer accumulates
    FedAvg in float32); every 5 MiB chunk of the model still differs from every other."""
    index = np.arange(start, start + count, dtype=np.uint64)
    hashed = (index * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return (hashed >> np.uint64(16)).astype(np.float32) / np.float32(256)


def initial_array(init: str, shape: tuple[int, ...], offset: int) -> np.ndarray:
    """One initial array of ``shape`` (its elements start at ``offset`` of the pattern)."""
    if init == "zeros":
        return np.zeros(shape, dtype=np.float32)
    if init != "pattern":
        raise SystemExit(f"unknown initial model {init!r}; known: {INITS}")
    return pattern(offset, int(np.prod(shape))).reshape(shape)


def make_model(spec: str, init: str = "zeros") -> dict[str, np.ndarray]:
    """The initial model: float32 ``init`` (``3x3``: one 3x3 array; big: flat arrays)."""
    if spec not in MODELS:
        raise SystemExit(f"unknown model {spec!r}; known: {sorted(MODELS)}")
    if spec == "3x3":
        return {"weights": initial_array(init, (3, 3), 0)}
    arrays, count = MODELS[spec]
    return {f"layer{i}": initial_array(init, (count,), i * count) for i in range(arrays)}


def summarize(arrays: Iterable[Any], init: str = "zeros") -> dict[str, float | int]:
    """Min, max and element count over all arrays of a final model, less the initial model
    (``init``; arrays in :func:`make_model`'s order), for the harness check."""
    lo, hi, elements, count = float("inf"), float("-inf"), 0, 0
    for value in arrays:
        array = np.asarray(value).reshape(-1)
        for start in range(0, array.size, SLICE):
            part = array[start : start + SLICE]
            if init != "zeros":
                part = part - pattern(elements + start, part.size)
            lo = min(lo, float(part.min()))
            hi = max(hi, float(part.max()))
        count += 1
        elements += int(array.size)
    return {"min": lo, "max": hi, "elements": elements, "arrays": count}


def emit(result: dict[str, Any]) -> None:
    """Print the result line the harness reads (one JSON object)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


class Clock:
    """Wall-clock stopwatch started at construction."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self.started
