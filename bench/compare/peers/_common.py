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


def make_model(spec: str) -> dict[str, np.ndarray]:
    """The initial model: float32 zeros (``3x3``: one 3x3 array; big: flat arrays)."""
    if spec not in MODELS:
        raise SystemExit(f"unknown model {spec!r}; known: {sorted(MODELS)}")
    if spec == "3x3":
        return {"weights": np.zeros((3, 3), dtype=np.float32)}
    arrays, count = MODELS[spec]
    return {f"layer{i}": np.zeros(count, dtype=np.float32) for i in range(arrays)}


def summarize(arrays: Iterable[Any]) -> dict[str, float | int]:
    """Min, max and element count over all arrays of a final model (for the harness check)."""
    lo, hi, elements, count = float("inf"), float("-inf"), 0, 0
    for value in arrays:
        array = np.asarray(value)
        count += 1
        elements += int(array.size)
        if array.size:
            lo = min(lo, float(array.min()))
            hi = max(hi, float(array.max()))
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
