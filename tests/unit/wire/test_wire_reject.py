"""Every reason the decoder rejects a frame, each raising WireError with a clear message."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel, WireError
from fedra.wire import (
    ALIGN,
    MAGIC,
    MAX_HEADER_SIZE,
    VERSION,
    Envelope,
    decode_envelope,
    decode_model,
    encode_envelope,
    encode_model,
)
from fedra.wire._proto import fedra_wire_pb2 as pb


def frame(
    header: pb.FrameHeader,
    data: bytes = b"",
    *,
    magic: bytes = MAGIC,
    version: int = VERSION,
    header_len: int | None = None,
    pad: bytes | None = None,
) -> bytes:
    """A frame built by hand, valid unless the arguments say otherwise."""
    raw = header.SerializeToString()
    prefix = struct.pack("<4sBI", magic, version, len(raw) if header_len is None else header_len)
    used = len(prefix) + len(raw)
    if pad is None:
        pad = bytes(-used % ALIGN)
    return prefix + raw + pad + data


def tensor(
    name: str = "t", dtype: str = "float32", shape: tuple[int, ...] = (2,), **kw: Any
) -> pb.Tensor:
    """A tensor entry; nbytes defaults to what dtype and shape need."""
    nbytes = kw.pop("nbytes", int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return pb.Tensor(name=name, dtype=dtype, shape=shape, offset=kw.pop("offset", 0), nbytes=nbytes)


def model_header(*tensors: pb.Tensor, **kw: Any) -> pb.FrameHeader:
    """A frame header carrying a model with ``tensors``."""
    fields: dict[str, Any] = {
        "has_params": True,
        "params_type": "full",
        "metrics_json": "{}",
        "meta_json": "{}",
    }
    fields.update(kw)
    return pb.FrameHeader(
        kind="model", headers_json="{}", model=pb.Model(tensors=tensors, **fields)
    )


def test_the_hand_built_frames_are_valid() -> None:
    two = tensor("b", offset=16)
    data = np.array([1, 2], "<f4").tobytes() + bytes(8) + np.array([3, 4], "<f4").tobytes()
    model = decode_model(frame(model_header(tensor("a"), two), data))
    assert model.params is not None
    assert model.params["b"].tolist() == [3.0, 4.0]
    assert decode_envelope(frame(pb.FrameHeader(kind="k", headers_json="{}"))).model is None


def reject(data: bytes | bytearray | memoryview, match: str, **kw: Any) -> None:
    with pytest.raises(WireError, match=match):
        decode_envelope(data, **kw)


def test_bad_magic() -> None:
    reject(frame(model_header(), magic=b"PK\x03\x04"), "bad magic")


def test_unknown_version() -> None:
    reject(frame(model_header(), version=VERSION + 1), "unknown frame version 2")


@pytest.mark.parametrize("size", [0, 1, 4, 8])
def test_truncated_prefix(size: int) -> None:
    reject(encode_model(FLModel())[:size], "truncated frame")


def test_header_length_beyond_buffer() -> None:
    reject(frame(model_header(), header_len=1000), "goes beyond the frame")


def test_header_length_above_limit() -> None:
    reject(frame(model_header(), header_len=MAX_HEADER_SIZE + 1), "above the limit")


def test_missing_header_padding() -> None:
    header = pb.FrameHeader(kind="", headers_json="{}")
    if (9 + header.ByteSize()) % ALIGN == 0:  # pragma: no cover - depends on the header size
        header.kind = "x"
    reject(frame(header, pad=b""), "truncated frame")


def test_nonzero_header_padding() -> None:
    good = frame(pb.FrameHeader(kind="ab", headers_json="{}"))
    reject(good[:-1] + b"\x01", "padding bytes are not zero")


def test_corrupt_protobuf() -> None:
    raw = struct.pack("<4sBI", MAGIC, VERSION, 7) + b"\x0a\xff\xff\xff\xff\x0f\x00"
    reject(raw, "corrupt frame header")


@pytest.mark.parametrize("dtype", ["object", "O", "float128", ">f4", "<f4", "str", "V8", ""])
def test_unknown_dtype(dtype: str) -> None:
    bad = pb.Tensor(name="t", dtype=dtype, shape=[1], offset=0, nbytes=4)
    reject(frame(model_header(bad), bytes(4)), "is not allowed")


def test_negative_dimension() -> None:
    reject(frame(model_header(tensor(shape=(-1, -2), nbytes=8)), bytes(8)), "negative dimension")


def test_overflowing_shape() -> None:
    huge = pb.Tensor(name="t", dtype="float64", shape=[0, 2**62, 2**62], offset=0, nbytes=0)
    reject(frame(model_header(huge)), "too large")


def test_too_many_dimensions() -> None:
    reject(frame(model_header(tensor(shape=(1,) * 33)), bytes(4)), "at most 32")


def test_nbytes_mismatch() -> None:
    reject(frame(model_header(tensor(shape=(2,), nbytes=12)), bytes(12)), "nbytes 12 != 2")


def test_tensor_outside_buffer() -> None:
    reject(frame(model_header(tensor(shape=(4,))), bytes(8)), "outside the data")


def test_overlapping_tensors() -> None:
    header = model_header(tensor("a", shape=(4,)), tensor("b", shape=(2,), offset=8))
    reject(frame(header, bytes(32)), "overlaps")


def test_gap_between_tensors() -> None:
    header = model_header(tensor("a"), tensor("b", offset=32))
    reject(frame(header, bytes(40)), "leaves a gap")


def test_misaligned_tensor() -> None:
    header = model_header(tensor("a"), tensor("b", offset=8))
    reject(frame(header, bytes(16)), "leaves a gap")


def test_nonzero_padding_between_tensors() -> None:
    header = model_header(tensor("a"), tensor("b", offset=16))
    reject(frame(header, bytes(8) + b"\x01" + bytes(15)), "padding bytes are not zero")


def test_trailing_bytes_after_tensors() -> None:
    reject(frame(model_header(tensor()), bytes(9)), "1 trailing bytes")


def test_trailing_bytes_without_model() -> None:
    reject(frame(pb.FrameHeader(kind="k", headers_json="{}"), b"junk"), "4 trailing bytes")


def test_duplicate_names() -> None:
    header = model_header(tensor("a"), tensor("a", offset=16))
    reject(frame(header, bytes(24)), "duplicate tensor name 'a'")


def test_tensors_without_params() -> None:
    reject(frame(model_header(tensor(), has_params=False), bytes(8)), "without params")


def test_unknown_params_type() -> None:
    reject(frame(model_header(params_type="delta")), "unknown params_type")


@pytest.mark.parametrize(
    ("field", "text", "match"),
    [
        ("metrics_json", "{", "metrics: invalid JSON"),
        ("metrics_json", "", "metrics: invalid JSON"),
        ("metrics_json", "[1]", "metrics: expected a JSON object"),
        ("metrics_json", '{"a": [1]}', "expected a number or a string"),
        ("metrics_json", '{"a": null}', "expected a number or a string"),
        ("meta_json", "{'a': 1}", "meta: invalid JSON"),
        ("meta_json", '{"a": NaN}', "meta: invalid JSON: NaN is not allowed"),
        ("meta_json", '{"a": -Infinity}', "meta: invalid JSON"),
        ("meta_json", '{"a": 1e400}', "meta: invalid JSON: number 1e400 is out of range"),
        ("meta_json", "[" * 100_000 + "]" * 100_000, "meta: invalid JSON"),
        ("meta_json", '{"a": ' + "9" * 5000 + "}", "meta: invalid JSON"),
    ],
)
def test_invalid_json(field: str, text: str, match: str) -> None:
    reject(frame(model_header(**{field: text})), match)


def test_invalid_headers_json() -> None:
    reject(frame(pb.FrameHeader(kind="k", headers_json="nope")), "headers: invalid JSON")
    reject(frame(pb.FrameHeader(kind="k", headers_json='"s"')), "headers: expected a JSON object")


def test_nan_metrics_are_accepted() -> None:
    model = decode_model(frame(model_header(metrics_json='{"loss": NaN, "x": Infinity}')))
    assert model.metrics["x"] == float("inf")


def test_total_size_above_max_size() -> None:
    data = encode_model(FLModel(params={"a": np.zeros(100)}))
    reject(data, "at most 100 allowed", max_size=100)
    assert decode_model(data, max_size=len(data)).params is not None


def test_too_many_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fedra.wire.decode.MAX_TENSORS", 2)
    header = model_header(*(tensor(str(i), shape=(0,), offset=0) for i in range(3)))
    reject(frame(header), "3 tensors, at most 2")


def test_name_too_long() -> None:
    reject(frame(model_header(tensor("n" * 1025)), bytes(8)), "tensor name is 1025 bytes")


def test_kind_too_long() -> None:
    reject(frame(pb.FrameHeader(kind="é" * 513, headers_json="{}")), "envelope kind is 1026")


def test_decode_model_needs_a_model() -> None:
    with pytest.raises(WireError, match="kind 'ping' carries no model"):
        decode_model(encode_envelope(Envelope("ping")))


def test_non_contiguous_buffer() -> None:
    data = encode_model(FLModel())
    doubled = memoryview(bytes(b for b in data for _ in range(2)))[::2]
    reject(doubled, "not contiguous")


def test_buffer_of_other_formats_is_read_as_bytes() -> None:
    data = encode_model(FLModel(params={"a": np.arange(4.0)}))
    assert len(data) % 4 == 0
    model = decode_model(memoryview(bytearray(data)).cast("I"))
    assert model.params is not None
    assert model.params["a"].tolist() == [0.0, 1.0, 2.0, 3.0]
