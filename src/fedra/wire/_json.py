"""JSON text for the header fields: metrics (NaN allowed), meta and envelope headers (strict)."""

from __future__ import annotations

import json
import math
from typing import cast

import numpy as np

from fedra.core import JsonObject, MetricValue, WireError
from fedra.core.jsonfile import JsonTooDeep, check_depth


def _default(value: object) -> object:
    # numpy scalars (np.float32(1.5), np.int64(3)) are written as the plain numbers they hold.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


def _reject_constant(token: str) -> object:
    raise ValueError(f"{token} is not allowed here")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token[:20]} is out of range")
    return value


def dump_object(value: object, what: str, *, allow_nan: bool = False) -> str:
    """``value`` (a dict) as compact JSON text; WireError if it is not JSON-compatible."""
    if not isinstance(value, dict):
        raise WireError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=allow_nan, default=_default, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as err:
        raise WireError(f"{what} is not JSON-compatible: {err}") from None


def load_object(text: str, what: str, *, allow_nan: bool = False) -> JsonObject:
    """Parse ``text`` as a JSON object; WireError on anything else."""
    try:
        if allow_nan:
            value = json.loads(text)
        else:
            value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as err:
        raise WireError(f"{what}: invalid JSON: {err}") from None
    try:
        check_depth(value, what)
    except JsonTooDeep as err:
        raise WireError(str(err)) from None
    if not isinstance(value, dict):
        raise WireError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def check_metrics(metrics: object, what: str) -> dict[str, MetricValue]:
    """``metrics`` itself, checked to map names to numbers (numpy's too) or strings."""
    if not isinstance(metrics, dict):
        raise WireError(f"{what} must be a dict, got {type(metrics).__name__}")
    for key, value in metrics.items():
        if not isinstance(value, int | float | str | np.integer | np.floating):
            raise WireError(
                f"{what}['{key}']: expected a number or a string, got {type(value).__name__}"
            )
    return cast("dict[str, MetricValue]", metrics)
