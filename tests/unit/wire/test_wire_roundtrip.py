"""Round trips through the wire format, zero-copy decoding and chunked encoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import assert_same_envelope, assert_same_model, envelopes, models

from fedra.core import FLModel, ParamsType, WireError
from fedra.wire import (
    ALIGN,
    MODEL_KIND,
    Envelope,
    decode_envelope,
    decode_model,
    encode_envelope,
    encode_envelope_chunks,
    encode_model,
    encode_model_chunks,
    prepare_model,
)


@settings(max_examples=300)
@given(models())
def test_model_round_trip(model: FLModel) -> None:
    data = encode_model(model)
    decoded = decode_model(data)
    assert_same_model(decoded, model)
    # The encoding is canonical: encoding what was decoded gives the same bytes.
    assert encode_model(decoded) == data


@settings(max_examples=200)
@given(envelopes())
def test_envelope_round_trip(envelope: Envelope) -> None:
    data = encode_envelope(envelope)
    assert_same_envelope(decode_envelope(data), envelope)
    assert_same_envelope(decode_envelope(bytearray(data)), envelope)
    assert_same_envelope(decode_envelope(memoryview(data)), envelope)


@settings(max_examples=200)
@given(models(), st.integers(min_value=1, max_value=300))
def test_chunks_join_to_the_frame(model: FLModel, chunk_size: int) -> None:
    chunks = [bytes(c) for c in encode_model_chunks(model, chunk_size)]
    assert b"".join(chunks) == encode_model(model)
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size


def test_envelope_chunks_and_large_arrays_are_views() -> None:
    big = np.arange(100_000, dtype=np.float32)
    envelope = Envelope("task", {"id": "t1"}, FLModel(params={"w": big}))
    chunk_size = 1 << 14
    chunks = list(encode_envelope_chunks(envelope, chunk_size))
    assert b"".join(chunks) == encode_envelope(envelope)
    views = [c for c in chunks if isinstance(c, memoryview)]
    assert views, "large arrays should be yielded as views of their memory"
    assert all(np.shares_memory(np.frombuffer(v, np.uint8), big) for v in views)


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        encode_model_chunks(FLModel(), 0)


def test_encode_model_uses_model_kind() -> None:
    envelope = decode_envelope(encode_model(FLModel(params={})))
    assert envelope.kind == MODEL_KIND
    assert envelope.headers == {}


def test_decode_is_zero_copy_and_read_only_for_bytes() -> None:
    model = FLModel(params={"a": np.arange(10, dtype=np.int64), "b": np.ones((3, 4), np.float32)})
    data = encode_model(model)
    decoded = decode_model(data)
    base = np.frombuffer(data, np.uint8)
    assert decoded.params is not None
    for array in decoded.params.values():
        assert np.shares_memory(array, base)
        assert not array.flags.writeable
        assert array.flags.c_contiguous
        offset = array.ctypes.data - base.ctypes.data
        assert offset % ALIGN == 0


def test_decode_from_bytearray_gives_writable_views() -> None:
    buffer = bytearray(encode_model(FLModel(params={"a": np.zeros(4, np.float64)})))
    decoded = decode_model(buffer)
    assert decoded.params is not None
    array = decoded.params["a"]
    assert array.flags.writeable
    array[0] = 7.0
    again = decode_model(bytes(buffer))
    assert again.params is not None
    assert again.params["a"][0] == 7.0


def test_encode_does_not_copy_contiguous_little_endian_arrays() -> None:
    array = np.arange(1000, dtype="<f8")
    frame = prepare_model(FLModel(params={"a": array}))
    assert any(
        isinstance(p, memoryview) and np.shares_memory(np.frombuffer(p, np.uint8), array)
        for p in frame.body
    )
    assert frame.nbytes == len(frame.tobytes())


def test_non_contiguous_and_big_endian_arrays() -> None:
    base = np.arange(24, dtype=">i4").reshape(4, 6)
    params = {"t": base.T, "s": base[:, ::2], "be": base}
    decoded = decode_model(encode_model(FLModel(params=params)))
    assert decoded.params is not None
    for name, array in params.items():
        assert decoded.params[name].dtype == np.dtype("<i4")
        np.testing.assert_array_equal(decoded.params[name], array)


def test_zero_d_empty_and_none_params() -> None:
    params = {"scalar": np.array(3.5), "empty": np.zeros((0, 7), np.int8), "": np.array(True)}
    decoded = decode_model(encode_model(FLModel(params=params, params_type=ParamsType.DIFF)))
    assert decoded.params is not None
    assert decoded.params["scalar"].shape == ()
    assert decoded.params["empty"].shape == (0, 7)
    assert decoded.params[""].dtype == np.bool_
    assert decoded.params_type is ParamsType.DIFF
    assert decode_model(encode_model(FLModel())).params is None
    assert decode_model(encode_model(FLModel(params={}))).params == {}


def test_metrics_may_be_nan_and_numpy_scalars_are_plain_numbers() -> None:
    model = FLModel(
        metrics={"loss": float("nan"), "acc": np.float32(0.5), "n": np.int64(3)},
        meta={"num_samples": np.int32(10)},
    )
    decoded = decode_model(encode_model(model))
    assert np.isnan(decoded.metrics["loss"])
    assert decoded.metrics["acc"] == 0.5
    assert type(decoded.metrics["n"]) is int
    assert decoded.meta == {"num_samples": 10}


@pytest.mark.parametrize(
    "array",
    [
        np.array([object()], dtype=object),
        np.array(["a"]),
        np.array([b"a"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.zeros(2, dtype=[("x", "<f4")]),
        np.zeros(2, dtype=np.longdouble),
        np.zeros(2, dtype="V4"),
    ],
    ids=["object", "str", "bytes", "datetime", "structured", "longdouble", "void"],
)
def test_encode_rejects_dtypes_that_cannot_travel(array: np.ndarray) -> None:
    with pytest.raises(WireError, match="cannot travel"):
        encode_model(FLModel(params={"x": array}))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (FLModel(meta={"x": float("nan")}), "meta is not JSON"),
        (FLModel(meta={"x": {1, 2}}), "meta is not JSON"),
        (FLModel(metrics={"x": [1, 2]}), "expected a number or a string"),
        (FLModel(metrics={"x": None}), "expected a number or a string"),
        (FLModel(params={"x" * 1025: np.zeros(1)}), "at most 1024"),
        (FLModel(params={"\ud800": np.zeros(1)}), "UTF-8"),
        (FLModel(current_round=2**64), "64-bit"),
    ],
)
def test_encode_rejects_models_that_cannot_travel(model: FLModel, match: str) -> None:
    with pytest.raises(WireError, match=match):
        encode_model(model)


def test_encode_rejects_bad_envelopes() -> None:
    with pytest.raises(WireError, match="headers is not JSON"):
        encode_envelope(Envelope("k", {"x": float("inf")}))
    with pytest.raises(WireError, match="envelope kind"):
        encode_envelope(Envelope("k" * 2000))


def test_encode_rejects_too_many_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fedra.wire.encode.MAX_TENSORS", 3)
    with pytest.raises(WireError, match="at most 3"):
        encode_model(FLModel(params={str(i): np.zeros(1) for i in range(4)}))
