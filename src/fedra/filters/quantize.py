"""Quantize and Dequantize: send float params in 16 or 8 bits, and turn them back into floats.

``Quantize(bits=16)`` casts every float32/float64 param to float16 (half the bytes of float32);
``Quantize(bits=8)`` maps every float param ``x`` to ``q = round((x - offset) / scale)`` in
uint8, with ``offset = min(x)`` and ``scale = (max(x) - min(x)) / 255`` per array (a quarter
of the bytes of float32). What is needed to undo it travels in the model's JSON meta under
:data:`QUANTIZED_KEY`::

    meta["quantized"] = {"fc.weight": {"bits": 8, "dtype": "float32",
                                       "scale": 0.0012, "offset": -0.15},
                         "fc.bias": {"bits": 16, "dtype": "float64"}}

``Dequantize()`` restores each listed param to its dtype (``offset + q * scale`` for 8 bits,
computed in float64) and removes the key; a model without the key passes unchanged. Non-float
params (integers, bools, complex) are never touched. Error per element: for 16 bits at most
2^-11 of the value for normal float16 numbers (``6.1e-5 <= |x| <= 65504``) and 2^-25 absolute
below that; for 8 bits at most ``scale / 2`` (plus the rounding of the restored dtype).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NotRequired, TypedDict

import numpy as np

from fedra.core import Array, FLModel, Params
from fedra.filters.base import FilterContext, FilterError

#: The meta key listing the quantized params and how to restore each one.
QUANTIZED_KEY = "quantized"
#: The float dtypes Quantize converts (other float dtypes cannot travel on the wire anyway).
FLOAT_DTYPES = ("float16", "float32", "float64")
#: The largest magnitude float16 holds; larger values would become Inf.
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: uint8 levels above 0: ``q`` runs from 0 to LEVELS.
LEVELS = 255
#: Elements per step of the 8-bit conversions: a 2 MiB float64 scratch, no model-sized one.
CHUNK = 1 << 18

_KEYS = {16: {"bits", "dtype"}, 8: {"bits", "dtype", "scale", "offset"}}
_WIRE_DTYPE: dict[int, np.dtype[Any]] = {16: np.dtype(np.float16), 8: np.dtype(np.uint8)}


class QuantizedParam(TypedDict):
    """How to restore one quantized param, as ``meta["quantized"][name]`` holds it."""

    bits: int
    dtype: str
    scale: NotRequired[float]
    offset: NotRequired[float]


class Quantize:
    """Send float params in ``bits`` bits: float16 (16) or per-array affine uint8 (8).

    Saves: half (16) or three quarters (8) of the bytes of float32 params on the wire. Put it
    last in a site's ``task_result_filters`` and ``Dequantize`` first in the server's
    ``result_filters``. Best on updates (``params_type=DIFF``): 8 bits spread over the range
    of an update lose far less than over the range of the weights themselves.

    Float params holding NaN or Inf are refused with :class:`FilterError` (8 bits cannot
    represent them, and a quantized model must stay finite), so are float params beyond
    float16's range (|x| > 65504) with 16 bits, and a model already quantized. float16 params
    are left as they are with 16 bits. A model without params passes unchanged.

    Parameters:
        bits: 16 or 8.
    """

    def __init__(self, bits: int = 16) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or bits not in (8, 16):
            raise ValueError(f"bits must be 16 or 8, got {bits!r}")
        self.bits = int(bits)

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the model with its float params quantized and the record in its meta."""
        if model.params is None:
            return model
        if QUANTIZED_KEY in model.meta:
            raise FilterError(
                f"{self!r} on site '{ctx.site}': the model is already quantized "
                f"(meta['{QUANTIZED_KEY}'] is set); quantize once, last in the chain"
            )
        params: Params = dict(model.params)
        record: dict[str, QuantizedParam] = {}
        for name in sorted(model.params):
            array = model.params[name]
            if array.dtype.name not in FLOAT_DTYPES:
                continue
            if self.bits == 16 and array.dtype == np.float16:
                continue  # already 16 bits: nothing to save, nothing to undo
            lo, hi = self._range(name, array, ctx)
            if self.bits == 16:
                params[name], entry = _to_float16(name, array, lo, hi, ctx)
            else:
                params[name], entry = _to_uint8(name, array, lo, hi, ctx)
            record[name] = entry
        if not record:
            return model
        meta = dict(model.meta)
        meta[QUANTIZED_KEY] = record
        return dataclasses.replace(model, params=params, metrics=dict(model.metrics), meta=meta)

    def _range(self, name: str, array: Array, ctx: FilterContext) -> tuple[float, float]:
        """The smallest and largest value of ``array``; FilterError on NaN or Inf."""
        if not array.size:
            return 0.0, 0.0
        lo, hi = float(np.min(array)), float(np.max(array))  # NaN anywhere makes both NaN
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise FilterError(
                f"{self!r} on site '{ctx.site}': param '{name}' has NaN or Inf values, which "
                f"a {self.bits}-bit quantized model cannot carry; put RejectNonFinite before "
                "Quantize to refuse such results by name, or fix the training that produced them"
            )
        return lo, hi

    def __repr__(self) -> str:
        return f"Quantize(bits={self.bits})"


class Dequantize:
    """Restore the params a :class:`Quantize` listed in ``meta["quantized"]`` to their dtype.

    Use it first in the server config's ``result_filters`` (so the aggregator sums floats),
    or in a site's ``task_data_filters``. A model without the key passes unchanged (so does a
    model without params); the key is removed from the returned model's meta. A malformed
    record (not a mapping, an unknown or missing field, a param that is absent or of another
    dtype than the record says, a non-finite scale or offset, values that do not fit the
    restored dtype) raises :class:`FilterError` naming the param.
    """

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the model with its quantized params turned back into floats."""
        if QUANTIZED_KEY not in model.meta:
            return model
        who = f"Dequantize on '{ctx.site}'"
        record = model.meta[QUANTIZED_KEY]
        if not isinstance(record, dict):
            raise FilterError(
                f"{who}: meta['{QUANTIZED_KEY}'] must map param names to records, "
                f"got {type(record).__name__}"
            )
        source = model.params or {}
        params: Params = dict(source)
        for name, entry in record.items():
            array = source.get(name)
            if array is None:
                raise FilterError(
                    f"{who}: meta['{QUANTIZED_KEY}'] lists param '{name}', "
                    "which the model does not hold"
                )
            params[name] = _restore(_check_entry(name, entry, array, who), array)
        meta = dict(model.meta)
        del meta[QUANTIZED_KEY]
        return dataclasses.replace(
            model,
            params=params if model.params is not None else None,
            metrics=dict(model.metrics),
            meta=meta,
        )

    def __repr__(self) -> str:
        return "Dequantize()"


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One validated record: how to turn a quantized param back into ``dtype``."""

    bits: int
    dtype: np.dtype[Any]
    scale: float = 0.0
    offset: float = 0.0


def _to_float16(
    name: str, array: Array, lo: float, hi: float, ctx: FilterContext
) -> tuple[Array, QuantizedParam]:
    if max(-lo, hi) > FLOAT16_MAX:
        raise FilterError(
            f"Quantize(bits=16) on site '{ctx.site}': param '{name}' has values beyond "
            f"float16's range (|x| up to {max(-lo, hi):.6g} > {FLOAT16_MAX:g}); send an update "
            "(params_type=DIFF), use bits=8, or exclude that param"
        )
    return array.astype(np.float16), {"bits": 16, "dtype": array.dtype.name}


def _to_uint8(
    name: str, array: Array, lo: float, hi: float, ctx: FilterContext
) -> tuple[Array, QuantizedParam]:
    span = hi - lo
    if not math.isfinite(span):
        raise FilterError(
            f"Quantize(bits=8) on site '{ctx.site}': param '{name}' spans more than float64 "
            f"holds ({lo:.6g} to {hi:.6g}); it cannot be quantized"
        )
    scale = span / LEVELS
    entry: QuantizedParam = {
        "bits": 8,
        "dtype": array.dtype.name,
        "scale": scale,
        "offset": lo,
    }
    # The site must never send what Dequantize would refuse (a top value that overflows).
    _check_entry(name, entry, np.empty(0, dtype=np.uint8), f"Quantize(bits=8) on '{ctx.site}'")
    out = np.zeros(array.shape, dtype=np.uint8)
    if scale > 0:
        flat_in = array.reshape(-1)
        flat_out = out.reshape(-1)
        scratch = np.empty(min(CHUNK, flat_in.size), dtype=np.float64)
        with np.errstate(over="ignore"):  # a subnormal scale may overflow: clipped to 255
            for start in range(0, flat_in.size, CHUNK):
                stop = min(start + CHUNK, flat_in.size)
                part = scratch[: stop - start]
                np.subtract(flat_in[start:stop], lo, out=part, dtype=np.float64)
                np.divide(part, scale, out=part)
                np.rint(part, out=part)
                np.clip(part, 0.0, LEVELS, out=part)
                flat_out[start:stop] = part
    return out, entry


def _check_entry(name: str, entry: object, array: Array, who: str) -> _Entry:
    """The validated record of param ``name`` (currently ``array``), or FilterError."""
    where = f"{who}: meta['{QUANTIZED_KEY}']['{name}']"
    if not isinstance(entry, dict):
        raise FilterError(f"{where} must be a mapping, got {type(entry).__name__}")
    bits = entry.get("bits")
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in _KEYS:
        raise FilterError(f"{where}: 'bits' must be 16 or 8, got {bits!r}")
    if set(entry) != _KEYS[bits]:
        raise FilterError(
            f"{where}: a {bits}-bit record has exactly the fields {sorted(_KEYS[bits])}, "
            f"got {sorted(entry)}"
        )
    dtype_name = entry["dtype"]
    if dtype_name not in FLOAT_DTYPES:
        raise FilterError(
            f"{where}: 'dtype' must be one of {list(FLOAT_DTYPES)}, got {dtype_name!r}"
        )
    if array.dtype.name != _WIRE_DTYPE[bits].name:
        raise FilterError(
            f"{where}: a {bits}-bit param must arrive as {_WIRE_DTYPE[bits]}, "
            f"param '{name}' is {array.dtype}"
        )
    dtype = np.dtype(dtype_name)
    if bits == 16:
        return _Entry(16, dtype)
    scale, offset = entry["scale"], entry["offset"]
    for key, value in (("scale", scale), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FilterError(f"{where}: '{key}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise FilterError(f"{where}: '{key}' must be finite, got {value!r}")
    if scale < 0:
        raise FilterError(f"{where}: 'scale' must be >= 0, got {scale!r}")
    # Restored values lie between offset and the top value, computed the way _restore does.
    with np.errstate(over="ignore"):
        ends = np.asarray([float(offset), float(LEVELS) * float(scale) + float(offset)])
        if not np.all(np.isfinite(ends.astype(dtype))):
            raise FilterError(
                f"{where}: values from {ends[0]:.6g} to {ends[1]:.6g} do not fit {dtype}"
            )
    return _Entry(8, dtype, float(scale), float(offset))


def _restore(entry: _Entry, array: Array) -> Array:
    """The float param of dtype ``entry.dtype`` that the quantized ``array`` stands for."""
    if entry.bits == 16:
        return array.astype(entry.dtype)
    out = np.empty(array.shape, dtype=entry.dtype)
    flat_in = array.reshape(-1)
    flat_out = out.reshape(-1)
    scratch = np.empty(min(CHUNK, flat_in.size), dtype=np.float64)
    for start in range(0, flat_in.size, CHUNK):
        stop = min(start + CHUNK, flat_in.size)
        part = scratch[: stop - start]
        np.multiply(flat_in[start:stop], entry.scale, out=part, dtype=np.float64)
        np.add(part, entry.offset, out=part)
        flat_out[start:stop] = part
    return out
