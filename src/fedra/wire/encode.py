"""Envelopes and models to frames: a protobuf header, then each array's raw memory.

Arrays are sent as they are when they are C-contiguous and little-endian; others are copied
once into that form. Anything that cannot travel (an object or string dtype, metrics or meta
that are not JSON, a name too long) raises WireError before a byte is produced.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np

from fedra.core import Array, FLModel, WireError
from fedra.wire._json import check_metrics, dump_object
from fedra.wire._proto import fedra_wire_pb2 as pb
from fedra.wire.envelope import Envelope
from fedra.wire.frame import (
    ALLOWED_DTYPES,
    DEFAULT_CHUNK_SIZE,
    MAGIC,
    MAX_HEADER_SIZE,
    MAX_NAME_BYTES,
    MAX_NDIM,
    MAX_TENSORS,
    PREFIX,
    VERSION,
    EncodedFrame,
    align_up,
    padding,
)

#: The envelope kind :func:`encode_model` uses.
MODEL_KIND = "model"


def _wire_array(name: str, array: Array) -> Array:
    """``array`` C-contiguous, little-endian and of an allowed dtype; copied only if needed."""
    dtype = array.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big"):
        dtype = dtype.newbyteorder("<")
    if dtype.name not in ALLOWED_DTYPES or dtype.kind not in "biufc" or dtype.fields is not None:
        raise WireError(
            f"param '{name}': dtype {array.dtype} cannot travel "
            f"(allowed: {', '.join(ALLOWED_DTYPES)})"
        )
    if array.ndim > MAX_NDIM:
        raise WireError(f"param '{name}': {array.ndim} dimensions, at most {MAX_NDIM} allowed")
    return np.asarray(array, dtype=ALLOWED_DTYPES[dtype.name], order="C")


def _check_name(name: str, what: str) -> None:
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise WireError(f"{what} {name!r} is not valid UTF-8: {err}") from None
    if size > MAX_NAME_BYTES:
        raise WireError(f"{what} is {size} bytes long, at most {MAX_NAME_BYTES} allowed")


def _model_header(model: FLModel, body: list[memoryview | bytes]) -> pb.Model:
    """Fill ``body`` with the arrays' memory and return the header describing it."""
    params = model.params
    check_metrics(model.metrics, "metrics")
    header = pb.Model(
        has_params=params is not None,
        params_type=model.params_type.value,
        metrics_json=dump_object(model.metrics, "metrics", allow_nan=True),
        meta_json=dump_object(model.meta, "meta"),
    )
    try:
        if model.current_round is not None:
            header.current_round = model.current_round
        if model.total_rounds is not None:
            header.total_rounds = model.total_rounds
    except (TypeError, ValueError) as err:
        raise WireError(f"current_round/total_rounds must be 64-bit integers: {err}") from None
    if params is None:
        return header
    if len(params) > MAX_TENSORS:
        raise WireError(f"{len(params)} params, at most {MAX_TENSORS} allowed")
    offset = 0
    for name, value in params.items():
        _check_name(name, "param name")
        array = _wire_array(name, value)
        start = align_up(offset)
        if start > offset:
            body.append(padding(offset))
        header.tensors.append(
            pb.Tensor(
                name=name,
                dtype=array.dtype.name,
                shape=array.shape,
                offset=start,
                nbytes=array.nbytes,
            )
        )
        if array.nbytes:
            body.append(array.reshape(-1).view(np.uint8).data)
        offset = start + array.nbytes
    return header


def prepare_envelope(envelope: Envelope) -> EncodedFrame:
    """Encode ``envelope`` as a frame in pieces, without copying the arrays' memory."""
    _check_name(envelope.kind, "envelope kind")
    header = pb.FrameHeader(
        kind=envelope.kind, headers_json=dump_object(envelope.headers, "headers")
    )
    body: list[memoryview | bytes] = []
    if envelope.model is not None:
        header.model.CopyFrom(_model_header(envelope.model, body))
    header_bytes = header.SerializeToString()
    if len(header_bytes) > MAX_HEADER_SIZE:
        raise WireError(f"header is {len(header_bytes)} bytes, at most {MAX_HEADER_SIZE} allowed")
    prefix = PREFIX.pack(MAGIC, VERSION, len(header_bytes))
    head_len = len(prefix) + len(header_bytes)
    return EncodedFrame(head=prefix + header_bytes + padding(head_len), body=body)


def prepare_model(model: FLModel) -> EncodedFrame:
    """Encode ``model`` as a frame in pieces (an envelope of kind :data:`MODEL_KIND`)."""
    return prepare_envelope(Envelope(kind=MODEL_KIND, model=model))


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode ``envelope`` as one frame."""
    return prepare_envelope(envelope).tobytes()


def encode_model(model: FLModel) -> bytes:
    """Encode ``model`` as one frame (an envelope of kind :data:`MODEL_KIND`)."""
    return prepare_model(model).tobytes()


def encode_envelope_chunks(
    envelope: Envelope, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[memoryview | bytes]:
    """The frame of ``envelope`` in pieces of ``chunk_size`` bytes (the last may be shorter).

    Joined, the pieces equal :func:`encode_envelope`'s output. Large arrays are yielded as
    views of their memory: use each piece before the arrays change.
    """
    return prepare_envelope(envelope).chunks(chunk_size)


def encode_model_chunks(
    model: FLModel, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[memoryview | bytes]:
    """The frame of ``model`` in pieces of ``chunk_size`` bytes; joined, equal to encode_model's."""
    return prepare_model(model).chunks(chunk_size)
