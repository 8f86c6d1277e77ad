"""Frames to envelopes and models, checking every byte that came from outside.

Decoding is zero-copy: each array is a view into the buffer it was decoded from (read-only when
that buffer is read-only, such as ``bytes``). Any malformed, oversized or non-canonical input
raises :class:`fedra.core.WireError` and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from fedra.core import Array, FLModel, JsonObject, Params, ParamsType, WireError
from fedra.wire._json import check_metrics, load_object
from fedra.wire._proto import fedra_wire_pb2 as pb
from fedra.wire.envelope import Envelope
from fedra.wire.frame import (
    ALLOWED_DTYPES,
    DEFAULT_MAX_FRAME,
    MAGIC,
    MAX_HEADER_SIZE,
    MAX_NAME_BYTES,
    MAX_NDIM,
    MAX_TENSORS,
    PREFIX,
    VERSION,
    align_up,
)

_MAX_INTP = 2**63 - 1


def _byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        raise WireError("frame buffer is not contiguous")
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def _check_zeros(view: memoryview, what: str) -> None:
    if view.nbytes and bytes(view).count(0) != view.nbytes:
        raise WireError(f"{what}: padding bytes are not zero")


def _check_name(name: str, what: str) -> None:
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise WireError(f"{what} is {size} bytes long, at most {MAX_NAME_BYTES} allowed")


def _tensor(t: pb.Tensor, data: memoryview, expected: int) -> Array:
    """The array ``t`` describes, checked against ``data``; it must start after ``expected``."""
    where = f"tensor '{t.name}'"
    dtype = ALLOWED_DTYPES.get(t.dtype)
    if dtype is None:
        raise WireError(f"{where}: dtype {t.dtype!r} is not allowed")
    shape = tuple(t.shape)
    if len(shape) > MAX_NDIM:
        raise WireError(f"{where}: {len(shape)} dimensions, at most {MAX_NDIM} allowed")
    if any(d < 0 for d in shape):
        raise WireError(f"{where}: negative dimension in shape {shape}")
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_INTP:
        raise WireError(f"{where}: shape {shape} is too large")
    count = math.prod(shape)
    if count * dtype.itemsize != t.nbytes:
        raise WireError(
            f"{where}: nbytes {t.nbytes} != {count} elements x {dtype.itemsize} bytes ({t.dtype})"
        )
    start = align_up(expected)
    if t.offset < expected:
        raise WireError(
            f"{where}: offset {t.offset} overlaps the previous tensor (ends {expected})"
        )
    if t.offset != start:
        raise WireError(f"{where}: offset {t.offset} leaves a gap (expected {start})")
    end = t.offset + t.nbytes
    if end > data.nbytes:
        raise WireError(f"{where}: bytes {t.offset}..{end} lie outside the data ({data.nbytes})")
    _check_zeros(data[expected:start], where)
    try:
        return np.frombuffer(data, dtype=dtype, count=count, offset=t.offset).reshape(shape)
    except ValueError as err:  # pragma: no cover - the checks above make this unreachable
        raise WireError(f"{where}: {err}") from None


def _model(header: pb.Model, data: memoryview) -> FLModel:
    """The model ``header`` describes, its arrays viewing ``data`` (the frame's tensor bytes)."""
    try:
        params_type = ParamsType(header.params_type)
    except ValueError:
        raise WireError(f"unknown params_type {header.params_type!r}") from None
    metrics = check_metrics(load_object(header.metrics_json, "metrics", allow_nan=True), "metrics")
    meta = load_object(header.meta_json, "meta")
    if len(header.tensors) > MAX_TENSORS:
        raise WireError(f"{len(header.tensors)} tensors, at most {MAX_TENSORS} allowed")
    if not header.has_params and header.tensors:
        raise WireError("tensors listed for a model without params")
    params: Params = {}
    expected = 0
    for t in header.tensors:
        _check_name(t.name, "tensor name")
        if t.name in params:
            raise WireError(f"duplicate tensor name '{t.name}'")
        params[t.name] = _tensor(t, data, expected)
        expected = t.offset + t.nbytes
    if expected != data.nbytes:
        raise WireError(f"{data.nbytes - expected} trailing bytes after the last tensor")
    return FLModel(
        params=params if header.has_params else None,
        params_type=params_type,
        metrics=metrics,
        meta=meta,
        current_round=header.current_round if header.HasField("current_round") else None,
        total_rounds=header.total_rounds if header.HasField("total_rounds") else None,
    )


def _head(view: memoryview, size: int) -> tuple[pb.FrameHeader, int]:
    """The header of the frame whose first bytes ``view`` holds (``size``: the whole frame's
    size), and where its tensor data starts."""
    if size < PREFIX.size or view.nbytes < PREFIX.size:
        raise WireError(f"truncated frame: {size} bytes, the prefix alone is {PREFIX.size}")
    magic, version, header_len = PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise WireError(f"bad magic {bytes(magic)!r}, expected {MAGIC!r}: not a Fedra frame")
    if version != VERSION:
        raise WireError(f"unknown frame version {version} (this Fedra reads version {VERSION})")
    if header_len > MAX_HEADER_SIZE:
        raise WireError(f"header length {header_len} is above the limit of {MAX_HEADER_SIZE}")
    header_end = PREFIX.size + header_len
    if header_end > size:
        raise WireError(f"header length {header_len} goes beyond the frame ({size} bytes)")
    data_start = align_up(header_end)
    if data_start > size:
        raise WireError(f"truncated frame: {size} bytes, the header padding ends at {data_start}")
    if data_start > view.nbytes:
        raise WireError(f"the frame's head is {view.nbytes} bytes, its header ends at {data_start}")
    header = pb.FrameHeader()
    try:
        header.ParseFromString(bytes(view[PREFIX.size : header_end]))
    except DecodeError as err:
        raise WireError(f"corrupt frame header: {err}") from None
    _check_zeros(view[header_end:data_start], "frame header")
    _check_name(header.kind, "envelope kind")
    return header, data_start


def _envelope(header: pb.FrameHeader, data: memoryview) -> Envelope:
    headers = load_object(header.headers_json, "headers")
    model = None
    if header.HasField("model"):
        model = _model(header.model, data)
    elif data.nbytes:
        raise WireError(f"{data.nbytes} trailing bytes in a frame without a model")
    return Envelope(kind=header.kind, headers=headers, model=model)


def decode_envelope(
    data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_FRAME
) -> Envelope:
    """Decode one frame; its model's arrays are views into ``data``.

    Raises WireError when ``data`` is larger than ``max_size`` bytes or malformed in any way.
    """
    view = _byte_view(data)
    size = view.nbytes
    if size > max_size:
        raise WireError(f"frame is {size} bytes, at most {max_size} allowed")
    header, data_start = _head(view, size)
    return _envelope(header, view[data_start:])


def decode_split(
    head: bytes | bytearray | memoryview,
    body: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_FRAME,
) -> Envelope:
    """Decode a frame given as its head (prefix, header, padding) and its body (the tensor
    bytes) held apart, such as a body that lies in a file; the arrays are views into ``body``.

    Checks exactly what :func:`decode_envelope` checks on ``head + body``.
    """
    head_view = _byte_view(head)
    body_view = _byte_view(body)
    size = head_view.nbytes + body_view.nbytes
    if size > max_size:
        raise WireError(f"frame is {size} bytes, at most {max_size} allowed")
    header, data_start = _head(head_view, size)
    if data_start != head_view.nbytes:
        raise WireError(
            f"the frame's head is {head_view.nbytes} bytes, its tensor data starts at {data_start}"
        )
    return _envelope(header, body_view)


def peek_head(data: bytes | bytearray | memoryview) -> tuple[str, JsonObject] | None:
    """The kind and headers of a frame from its first bytes, without its tensors.

    For routing before a message has fully arrived: None when ``data`` does not hold the
    whole header or the header is malformed (:func:`decode_envelope` of the whole frame then
    says why). The tensors are not checked here.
    """
    found = _peek_header(data)
    return None if found is None else (found[0].kind, found[1])


@dataclass(frozen=True)
class TensorHead:
    """One tensor as a frame's header declares it (not checked against the bytes)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class FrameHead:
    """What a frame's header declares: its kind, its headers, and its model's tensors
    (``tensors`` is None when the frame carries no model or a model without params)."""

    kind: str
    headers: JsonObject
    tensors: tuple[TensorHead, ...] | None


def peek_frame(data: bytes | bytearray | memoryview) -> FrameHead | None:
    """Like :func:`peek_head`, with the tensors the header lists (names, dtypes, shapes,
    sizes): enough to check a message against what is expected before its body arrives.
    None when ``data`` does not hold the whole header or the header is malformed."""
    found = _peek_header(data)
    if found is None:
        return None
    header, headers = found
    tensors = None
    if header.HasField("model") and header.model.has_params:
        tensors = tuple(
            TensorHead(t.name, t.dtype, tuple(t.shape), t.nbytes) for t in header.model.tensors
        )
    return FrameHead(header.kind, headers, tensors)


def _peek_header(
    data: bytes | bytearray | memoryview,
) -> tuple[pb.FrameHeader, JsonObject] | None:
    """A frame's parsed header and headers from its first bytes; None when ``data`` does not
    hold the whole header (at most MAX_HEADER_SIZE bytes) or it is malformed."""
    try:
        view = _byte_view(data)
        if view.nbytes < PREFIX.size:
            return None
        magic, version, header_len = PREFIX.unpack_from(view)
        header_end = PREFIX.size + header_len
        if magic != MAGIC or version != VERSION or header_end > view.nbytes:
            return None
        if header_len > MAX_HEADER_SIZE:
            return None
        header = pb.FrameHeader()
        header.ParseFromString(bytes(view[PREFIX.size : header_end]))
        return header, load_object(header.headers_json, "headers")
    except (WireError, DecodeError, ValueError):
        return None


def decode_model(
    data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_FRAME
) -> FLModel:
    """Decode a frame that carries a model (any envelope kind); arrays are views into ``data``.

    Raises WireError when the frame carries no model, is larger than ``max_size`` bytes or is
    malformed in any way.
    """
    envelope = decode_envelope(data, max_size=max_size)
    if envelope.model is None:
        raise WireError(f"frame of kind '{envelope.kind}' carries no model")
    return envelope.model
