"""ClipNorm on updates (site or server) and on full params against the model received."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedra.core import FLModel, Params, ParamsType
from fedra.filters import FILTERS, ClipNorm, Filter, FilterContext, FilterError, l2_norm


def _ctx(reference: Params | None = None) -> FilterContext:
    return FilterContext(
        "site-2", "train", "task_result", 1, np.random.default_rng(0), reference=reference
    )


def _diff(scale: float) -> FLModel:
    rng = np.random.default_rng(7)
    return FLModel(
        params={
            "w": (rng.normal(size=(30, 4)) * scale).astype(np.float32),
            "b": rng.normal(size=4) * scale,
            "steps": np.asarray([12], dtype=np.int64),
        },
        params_type=ParamsType.DIFF,
        metrics={"loss": 0.25},
        meta={"num_samples": 9},
    )


def _norm(params: Params, names: tuple[str, ...] = ("b", "w")) -> float:
    return math.sqrt(sum(float(np.sum(params[n].astype(np.float64) ** 2)) for n in names))


def test_big_update_is_scaled_to_the_bound_keeping_its_direction() -> None:
    model = _diff(100.0)
    before = {k: v.copy() for k, v in (model.params or {}).items()}
    out = ClipNorm(2.5)(model, _ctx())
    assert out.params is not None and model.params is not None
    assert _norm(out.params) == pytest.approx(2.5, rel=1e-6)
    factor = 2.5 / _norm(before)
    np.testing.assert_allclose(out.params["b"], before["b"] * factor, rtol=1e-12)
    np.testing.assert_allclose(out.params["w"], before["w"] * factor, rtol=1e-5)
    assert out.params["w"].dtype == np.float32
    np.testing.assert_array_equal(out.params["steps"], [12])  # integers untouched
    assert out.metrics == {"loss": 0.25} and out.meta == {"num_samples": 9}
    for name, array in before.items():  # the input is not modified
        np.testing.assert_array_equal(model.params[name], array)


def test_small_update_is_returned_unchanged() -> None:
    model = _diff(0.001)
    assert ClipNorm(10.0)(model, _ctx()) is model


def test_full_params_are_clipped_against_the_model_received() -> None:
    reference = {"w": np.full(5, 3.0), "n": np.asarray(4)}
    sent_back = FLModel(params={"w": np.full(5, 3.0) + np.array([30.0, 40.0, 0, 0, 0]), "n": 5})
    out = ClipNorm(5.0)(sent_back, _ctx(reference))
    assert out.params is not None and out.params_type is ParamsType.FULL
    # The update (30, 40, 0, 0, 0) has norm 50: scaled by 1/10 to (3, 4, 0, 0, 0).
    np.testing.assert_allclose(out.params["w"], [6.0, 7.0, 3.0, 3.0, 3.0])
    assert int(out.params["n"]) == 5


def test_full_params_without_a_reference_are_refused() -> None:
    model = _diff(1.0)
    model.params_type = ParamsType.FULL
    with pytest.raises(FilterError, match="DIFF"):
        ClipNorm(1.0)(model, _ctx())
    with pytest.raises(FilterError, match="'b'"):
        ClipNorm(1.0)(model, _ctx({"w": np.zeros((30, 4))}))


def test_non_finite_and_huge_updates() -> None:
    nan = FLModel(params={"w": np.array([1.0, np.nan])}, params_type=ParamsType.DIFF)
    with pytest.raises(FilterError, match="RejectNonFinite"):
        ClipNorm(1.0)(nan, _ctx())
    huge = FLModel(params={"w": np.array([3e200, 4e200])}, params_type=ParamsType.DIFF)
    assert l2_norm(huge.params["w"]) == pytest.approx(5e200)  # type: ignore[index]
    out = ClipNorm(1.0)(huge, _ctx())
    np.testing.assert_allclose(out.params["w"], [0.6, 0.8])  # type: ignore[index]


def test_models_without_params_pass_and_bad_bounds_fail() -> None:
    metrics_only = FLModel(metrics={"accuracy": 1.0})
    assert ClipNorm(1.0)(metrics_only, _ctx()) is metrics_only
    for bad in (0.0, -1.0, math.inf, math.nan, True):
        with pytest.raises(ValueError, match="max_norm"):
            ClipNorm(bad)
    assert isinstance(ClipNorm(1.0), Filter)
    assert FILTERS["ClipNorm"] is ClipNorm
