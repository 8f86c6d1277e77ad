"""Hostile input: random and corrupted frames either decode or raise WireError, nothing else."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import envelopes, json_values

from fedra.core import WireError
from fedra.wire import (
    ALLOWED_DTYPES,
    MAGIC,
    VERSION,
    Envelope,
    decode_envelope,
    encode_envelope,
)
from fedra.wire._proto import fedra_wire_pb2 as pb

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_wire_error(data: bytes) -> Envelope | None:
    """Decode ``data``; a decoded envelope must encode again. Any other exception fails."""
    try:
        envelope = decode_envelope(data, max_size=1 << 20)
    except WireError:
        return None
    encode_envelope(envelope)
    return envelope


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    decodes_or_wire_error(data)


@FUZZ
@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=512))
def test_random_bytes_after_a_valid_prefix(header_len: int, rest: bytes) -> None:
    decodes_or_wire_error(struct.pack("<4sBI", MAGIC, VERSION, header_len) + rest)
    decodes_or_wire_error(struct.pack("<4sBI", MAGIC, VERSION, len(rest)) + rest)


@st.composite
def corrupted_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with bytes flipped or overwritten, cut short or extended."""
    data = bytearray(encode_envelope(draw(envelopes())))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        action = draw(st.sampled_from(["flip", "set", "truncate", "extend", "splice"]))
        if action in ("flip", "set") and data:
            pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
            if action == "flip":
                data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
            else:
                data[pos] = draw(st.integers(min_value=0, max_value=255))
        elif action == "truncate":
            data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
        elif action == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        elif action == "splice":
            pos = draw(st.integers(min_value=0, max_value=len(data)))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@FUZZ
@given(corrupted_frames())
def test_corrupted_frames(data: bytes) -> None:
    decodes_or_wire_error(data)


_dims = st.integers(min_value=-3, max_value=6) | st.integers(
    min_value=-(2**63), max_value=2**63 - 1
)
_u64 = st.integers(min_value=0, max_value=64) | st.integers(min_value=0, max_value=2**64 - 1)
_tensors = st.builds(
    pb.Tensor,
    name=st.sampled_from(["a", "b", "", "a" * 1100]),
    dtype=st.sampled_from([*ALLOWED_DTYPES, "object", "float128", ">f4", "U1"]),
    shape=st.lists(_dims, max_size=4),
    offset=st.sampled_from([0, 8, 16, 32, 48]) | _u64,
    nbytes=st.sampled_from([0, 1, 4, 8, 16]) | _u64,
)
_json_text = (
    st.just("{}")
    | st.sampled_from(["{}", "", "[]", '{"a": NaN}', '{"a": [1]}', '{"a": 1.5}'])
    | (st.dictionaries(st.text(max_size=4), json_values, max_size=3).map(json.dumps))
)


@st.composite
def structured_frames(draw: st.DrawFn) -> bytes:
    """Well-formed protobuf headers with arbitrary field values, over arbitrary data."""
    header = pb.FrameHeader(kind=draw(st.text(max_size=4)), headers_json=draw(_json_text))
    tensors = draw(st.lists(_tensors, max_size=4))
    if draw(st.integers(0, 9)):
        header.model.CopyFrom(
            pb.Model(
                has_params=draw(st.integers(0, 9)) > 0,
                params_type=draw(st.just("full") | st.sampled_from(["diff", "", "x"])),
                metrics_json=draw(_json_text),
                meta_json=draw(_json_text),
                tensors=tensors,
            )
        )
    raw = header.SerializeToString()
    prefix = struct.pack("<4sBI", MAGIC, VERSION, len(raw))
    pad = bytes(-(len(prefix) + len(raw)) % 16) if draw(st.integers(0, 9)) else b""
    end = max((t.offset + t.nbytes for t in tensors), default=0)
    size = end if end <= 4096 and draw(st.booleans()) else draw(st.integers(0, 96))
    return prefix + raw + pad + draw(st.binary(min_size=size, max_size=size))


@FUZZ
@given(structured_frames())
def test_structured_frames(data: bytes) -> None:
    decodes_or_wire_error(data)
