"""Quantize and Dequantize: error bounds, dtypes, sizes, edge cases and malformed records."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel, Params, ParamsType, readonly
from fedra.filters import (
    FILTERS,
    QUANTIZED_KEY,
    Dequantize,
    Filter,
    FilterChain,
    FilterContext,
    FilterError,
    Quantize,
)
from fedra.wire import decode_model, encode_model

CTX = FilterContext("site-3", "train", "task_result", 2, np.random.default_rng(0))


def _normal_values(n: int, dtype: type[np.floating[Any]], seed: int = 0) -> np.ndarray:
    """Values of both signs whose magnitudes spread over float16's normal range, log-uniform."""
    rng = np.random.default_rng(seed)
    magnitude = np.exp(rng.uniform(math.log(6.2e-5), math.log(65000.0), size=n))
    return (magnitude * rng.choice([-1.0, 1.0], size=n)).astype(dtype)


def _update(seed: int = 1) -> FLModel:
    rng = np.random.default_rng(seed)
    return FLModel(
        params={
            "fc.weight": rng.normal(0.0, 0.02, size=(64, 33)).astype(np.float32),
            "fc.bias": rng.normal(0.0, 0.5, size=33),  # float64
            "steps": np.asarray([7, 8], dtype=np.int64),
            "mask": np.asarray([True, False]),
            "phase": np.asarray([1 + 2j], dtype=np.complex64),
        },
        params_type=ParamsType.DIFF,
        metrics={"loss": 0.5},
        meta={"num_samples": 12},
        current_round=2,
    )


def _round_trip(model: FLModel, bits: int) -> tuple[FLModel, FLModel]:
    quantized = Quantize(bits)(model, CTX)
    return quantized, Dequantize()(quantized, CTX)


# --- 16 bits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float16_relative_error_is_at_most_2_to_the_minus_11(
    dtype: type[np.floating[Any]],
) -> None:
    x = _normal_values(20_000, dtype)
    quantized, restored = _round_trip(FLModel(params={"x": x}), 16)
    assert quantized.params is not None and restored.params is not None
    assert quantized.params["x"].dtype == np.float16
    assert quantized.meta[QUANTIZED_KEY] == {"x": {"bits": 16, "dtype": np.dtype(dtype).name}}
    out = restored.params["x"]
    assert out.dtype == dtype and out.shape == x.shape
    relative = np.abs(out.astype(np.float64) - x) / np.abs(x.astype(np.float64))
    assert relative.max() <= 2.0**-11
    assert relative.max() > 2.0**-13  # a real rounding happened (the bound is not vacuous)
    assert QUANTIZED_KEY not in restored.meta


def test_float16_subnormal_values_have_a_small_absolute_error() -> None:
    x = np.random.default_rng(2).uniform(-6e-5, 6e-5, size=5000)
    _, restored = _round_trip(FLModel(params={"x": x}), 16)
    assert restored.params is not None
    assert np.abs(restored.params["x"] - x).max() <= 2.0**-25


def test_float16_range_is_enforced() -> None:
    model = FLModel(params={"big": np.asarray([1.0, -70000.0], dtype=np.float32)})
    with pytest.raises(FilterError, match=r"'big'.*float16's range"):
        Quantize(16)(model, CTX)
    # At the edge it still fits: 65504 is float16's largest value.
    _, restored = _round_trip(FLModel(params={"edge": np.asarray([65504.0, -65504.0])}), 16)
    assert restored.params is not None
    np.testing.assert_array_equal(restored.params["edge"], [65504.0, -65504.0])


def test_float16_params_are_left_as_they_are() -> None:
    model = FLModel(params={"h": np.ones(4, dtype=np.float16), "n": np.arange(2)})
    assert Quantize(16)(model, CTX) is model


# --- 8 bits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_uint8_error_is_at_most_half_a_step(dtype: type[np.floating[Any]]) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_t(3, size=(50, 40)) * 0.3 + 0.1).astype(dtype)
    quantized, restored = _round_trip(FLModel(params={"x": x}), 8)
    assert quantized.params is not None and restored.params is not None
    q = quantized.params["x"]
    assert q.dtype == np.uint8 and q.shape == x.shape
    # Independent computation of the affine map, in Python floats over the listed values.
    values = [float(v) for v in x.ravel()]
    lo, hi = min(values), max(values)
    step = (hi - lo) / 255
    record = quantized.meta[QUANTIZED_KEY]["x"]
    assert record == {"bits": 8, "dtype": np.dtype(dtype).name, "scale": step, "offset": lo}
    assert int(q.min()) == 0 and int(q.max()) == 255  # the whole range is used
    codes = [int(c) for c in q.ravel()]
    assert all(abs(c - (v - lo) / step) <= 0.5 + 1e-9 for c, v in zip(codes, values, strict=True))
    # Restored: offset + q * scale, within half a step of x (plus the dtype's own rounding).
    out = restored.params["x"]
    assert out.dtype == dtype and out.shape == x.shape
    expected = np.asarray([lo + c * step for c in codes]).reshape(x.shape)
    np.testing.assert_allclose(out, expected.astype(dtype), rtol=0, atol=0)
    ulp = np.spacing(np.abs(x)).astype(np.float64)
    error = np.abs(out.astype(np.float64) - x.astype(np.float64))
    assert np.all(error <= step / 2 * (1 + 1e-12) + ulp)
    assert error.max() > step / 8  # a real quantization happened


def test_constant_and_empty_arrays() -> None:
    model = FLModel(
        params={
            "const": np.full((3, 2), -2.5, dtype=np.float32),
            "empty": np.zeros((4, 0), dtype=np.float64),
            "scalar": np.asarray(0.75, dtype=np.float32),
        }
    )
    for bits in (8, 16):
        quantized, restored = _round_trip(model, bits)
        assert restored.params is not None and model.params is not None
        for name, original in model.params.items():
            assert restored.params[name].dtype == original.dtype
            assert restored.params[name].shape == original.shape
            np.testing.assert_array_equal(restored.params[name], original)
    quantized = Quantize(8)(model, CTX)
    assert quantized.meta[QUANTIZED_KEY]["const"]["scale"] == 0.0
    assert quantized.meta[QUANTIZED_KEY]["empty"] == {
        "bits": 8,
        "dtype": "float64",
        "scale": 0.0,
        "offset": 0.0,
    }


def test_extreme_but_finite_values() -> None:
    f32 = np.finfo(np.float32)
    x = np.asarray([f32.min, 0.0, f32.max], dtype=np.float32)
    _, restored = _round_trip(FLModel(params={"x": x}), 8)
    assert restored.params is not None
    assert np.all(np.isfinite(restored.params["x"]))
    np.testing.assert_array_equal(restored.params["x"][[0, 2]], x[[0, 2]])
    f64 = np.finfo(np.float64)
    with pytest.raises(FilterError, match=r"'wide'.*cannot be quantized"):
        Quantize(8)(FLModel(params={"wide": np.asarray([f64.min, f64.max])}), CTX)


# --- both ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 8])
def test_non_float_params_metrics_and_meta_pass_through(bits: int) -> None:
    model = _update()
    quantized, restored = _round_trip(model, bits)
    assert model.params is not None and quantized.params is not None
    assert restored.params is not None
    for name in ("steps", "mask", "phase"):
        assert quantized.params[name] is model.params[name]
        assert restored.params[name] is model.params[name]
    assert sorted(quantized.meta[QUANTIZED_KEY]) == ["fc.bias", "fc.weight"]
    assert quantized.params_type is restored.params_type is ParamsType.DIFF
    assert restored.metrics == {"loss": 0.5} and restored.meta == {"num_samples": 12}
    assert quantized.current_round == restored.current_round == 2
    assert restored.params["fc.weight"].dtype == np.float32
    assert restored.params["fc.bias"].dtype == np.float64


@pytest.mark.parametrize("bits", [16, 8])
def test_inputs_are_not_modified(bits: int) -> None:
    model = _update()
    assert model.params is not None
    before = {k: v.copy() for k, v in model.params.items()}
    model.params = readonly(model.params)  # what a filter gets: views nobody may change
    meta_before = copy.deepcopy(model.meta)
    quantized = Quantize(bits)(model, CTX)
    quantized_before = copy.deepcopy(quantized)
    assert quantized.params is not None
    quantized.params = readonly(quantized.params)
    restored = Dequantize()(quantized, CTX)
    for name, array in before.items():
        np.testing.assert_array_equal(model.params[name], array)
    assert model.meta == meta_before
    assert quantized.meta == quantized_before.meta
    assert restored.params is not None
    assert restored.params["fc.weight"].flags.writeable  # a fresh array, not a view


@pytest.mark.parametrize("bits", [16, 8])
def test_byte_sizes_on_the_wire(bits: int) -> None:
    rng = np.random.default_rng(4)
    params: Params = {f"layer{i}": rng.normal(size=(256, 256)).astype(np.float32) for i in range(4)}
    model = FLModel(params=params, params_type=ParamsType.DIFF)
    quantized = Quantize(bits)(model, CTX)
    assert quantized.nbytes() * (32 // bits) == model.nbytes()
    plain_frame, small_frame = encode_model(model), encode_model(quantized)
    # The frame's header grows by the JSON record; the tensor bytes shrink by 2x or 4x.
    assert len(small_frame) < model.nbytes() * bits / 32 + 1024
    assert len(plain_frame) >= model.nbytes()
    # The record survives the wire's JSON meta, and Dequantize works on the decoded model.
    received = decode_model(small_frame)
    restored = Dequantize()(received, CTX)
    expected = Dequantize()(quantized, CTX)
    assert restored.params is not None and expected.params is not None
    for name in params:
        np.testing.assert_array_equal(restored.params[name], expected.params[name])


@pytest.mark.parametrize("bits", [16, 8])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bits: int, bad: float) -> None:
    model = FLModel(params={"ok": np.ones(3), "w": np.asarray([0.0, bad, 1.0], dtype=np.float32)})
    with pytest.raises(FilterError, match=r"site-3.*'w' has NaN or Inf.*RejectNonFinite"):
        Quantize(bits)(model, CTX)


def test_models_without_float_params_or_without_params_pass_unchanged() -> None:
    for bits in (16, 8):
        for model in (FLModel(metrics={"acc": 0.9}), FLModel(params={"n": np.arange(3)})):
            assert Quantize(bits)(model, CTX) is model
    assert Dequantize()(_update(), CTX).meta == {"num_samples": 12}
    plain = _update()
    assert Dequantize()(plain, CTX) is plain


def test_quantizing_twice_is_refused() -> None:
    once = Quantize(16)(_update(), CTX)
    with pytest.raises(FilterError, match="already quantized"):
        Quantize(8)(once, CTX)


def test_constructor_checks_bits_and_registry() -> None:
    for bad in (4, 32, True, 8.0, "8"):
        with pytest.raises(ValueError, match="bits must be 16 or 8"):
            Quantize(bad)  # type: ignore[arg-type]
    assert Quantize().bits == 16
    assert FILTERS["Quantize"] is Quantize and FILTERS["Dequantize"] is Dequantize
    assert isinstance(Quantize(8), Filter) and isinstance(Dequantize(), Filter)
    assert repr(FilterChain([Quantize(8), Dequantize()])) == (
        "FilterChain([Quantize(bits=8), Dequantize()])"
    )


# --- malformed records -----------------------------------------------------------------------


def _quantized8() -> FLModel:
    return Quantize(8)(FLModel(params={"w": np.linspace(-1, 1, 11, dtype=np.float32)}), CTX)


def _with_record(record: Any, params: Params | None = None) -> FLModel:
    model = _quantized8()
    return FLModel(
        params=params if params is not None else model.params, meta={QUANTIZED_KEY: record}
    )


GOOD = {"bits": 8, "dtype": "float32", "scale": 2 / 255, "offset": -1.0}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"w": [8, "float32"]}, r"\['w'\] must be a mapping, got list"),
        ({"w": {**GOOD, "bits": 4}}, r"\['w'\]: 'bits' must be 16 or 8, got 4"),
        ({"w": {**GOOD, "bits": True}}, r"\['w'\]: 'bits' must be 16 or 8"),
        ({"w": {**GOOD, "bits": 8.0}}, r"\['w'\]: 'bits' must be 16 or 8, got 8.0"),
        ({"w": {**GOOD, "zero": 0}}, r"\['w'\]: a 8-bit record has exactly the fields"),
        ({"w": {"bits": 8, "dtype": "float32", "scale": 0.1}}, r"\['w'\].*exactly the fields"),
        ({"w": {**GOOD, "dtype": "int64"}}, r"\['w'\]: 'dtype' must be one of"),
        ({"w": {**GOOD, "dtype": "object"}}, r"\['w'\]: 'dtype' must be one of"),
        (
            {"w": {"bits": 16, "dtype": "float32"}},
            r"\['w'\]: a 16-bit param must arrive as float16",
        ),
        ({"w": {**GOOD, "scale": "0.1"}}, r"\['w'\]: 'scale' must be a number"),
        ({"w": {**GOOD, "scale": math.nan}}, r"\['w'\]: 'scale' must be finite"),
        ({"w": {**GOOD, "offset": math.inf}}, r"\['w'\]: 'offset' must be finite"),
        ({"w": {**GOOD, "scale": -0.01}}, r"\['w'\]: 'scale' must be >= 0"),
        ({"w": {**GOOD, "scale": 1e37}}, r"\['w'\]: values from .* do not fit float32"),
        ({"v": GOOD}, r"lists param 'v', which the model does not hold"),
        (["w"], r"must map param names to records, got list"),
    ],
)
def test_malformed_records_name_the_param(record: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message) as info:
        Dequantize()(_with_record(record), CTX)
    assert "Dequantize on 'site-3'" in str(info.value)


def test_a_record_for_a_param_of_the_wrong_dtype_is_refused() -> None:
    model = _with_record({"w": GOOD}, params={"w": np.zeros(11, dtype=np.float32)})
    with pytest.raises(FilterError, match=r"\['w'\]: a 8-bit param must arrive as uint8.*float32"):
        Dequantize()(model, CTX)


def test_a_record_without_params_is_refused_and_an_empty_one_is_dropped() -> None:
    with pytest.raises(FilterError, match="'w', which the model does not hold"):
        Dequantize()(FLModel(meta={QUANTIZED_KEY: {"w": GOOD}}), CTX)
    out = Dequantize()(FLModel(metrics={"a": 1.0}, meta={QUANTIZED_KEY: {}, "k": 1}), CTX)
    assert out.params is None and out.meta == {"k": 1} and out.metrics == {"a": 1.0}


def test_the_good_record_itself_restores() -> None:
    out = Dequantize()(_with_record({"w": GOOD}), CTX)
    assert out.params is not None
    np.testing.assert_allclose(out.params["w"], np.linspace(-1, 1, 11), atol=1 / 255 + 1e-7)


@pytest.mark.parametrize("name", ["GaussianPrivacy", "PercentilePrivacy", "SVTPrivacy", "ClipNorm"])
def test_privacy_filters_refuse_quantized_codes_instead_of_protecting_nothing(name: str) -> None:
    """Noise or clipping on uint8 codes would protect nothing while reporting that it did."""
    from fedra.core import FLModel, ParamsType
    from fedra.filters import FILTERS, FilterContext, FilterError, Quantize

    args = {
        "GaussianPrivacy": {"clip_norm": 1.0, "noise_multiplier": 1.0},
        "PercentilePrivacy": {},
        "SVTPrivacy": {},
        "ClipNorm": {"max_norm": 1.0},
    }[name]
    update = FLModel(params={"w": np.linspace(-1, 1, 50)}, params_type=ParamsType.DIFF)
    ctx = FilterContext("site-1", "train", "task_result")
    quantized = Quantize(bits=8)(update, ctx)
    with pytest.raises(FilterError, match="quantized"):
        FILTERS[name](**args)(quantized, ctx)
