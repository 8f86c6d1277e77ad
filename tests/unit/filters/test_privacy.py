"""Gaussian, percentile and SVT privacy filters on model updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedra.core import FLModel, ParamsType
from fedra.filters import (
    Filter,
    FilterContext,
    FilterError,
    GaussianPrivacy,
    PercentilePrivacy,
    SVTPrivacy,
)


def _ctx(seed: int = 0) -> FilterContext:
    return FilterContext("site-1", "train", "task_result", 3, np.random.default_rng(seed))


def _update(seed: int = 1, n: int = 10_000) -> FLModel:
    rng = np.random.default_rng(seed)
    return FLModel(
        params={
            "w": rng.normal(size=(n // 10, 10)).astype(np.float32),
            "b": rng.normal(size=10),
            "steps": np.asarray([5], dtype=np.int64),
        },
        params_type=ParamsType.DIFF,
        metrics={"loss": 0.5},
        meta={"num_samples": 100},
        current_round=3,
    )


def _flat(model: FLModel) -> np.ndarray:
    params = model.params or {}
    return np.concatenate([params[n].astype(np.float64).ravel() for n in ("b", "w")])


def _snapshot(model: FLModel) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in (model.params or {}).items()}


def _assert_unchanged(model: FLModel, before: dict[str, np.ndarray]) -> None:
    for name, array in before.items():
        np.testing.assert_array_equal((model.params or {})[name], array)


ALL: list[Filter] = [
    GaussianPrivacy(1.0, 0.5),
    PercentilePrivacy(10, 0.5),
    SVTPrivacy(fraction=0.2, gamma=0.5),
]


@pytest.mark.parametrize("flt", ALL, ids=repr)
def test_input_unchanged_metadata_kept(flt: Filter) -> None:
    model = _update()
    before = _snapshot(model)
    out = flt(model, _ctx())
    _assert_unchanged(model, before)
    assert out.metrics == {"loss": 0.5}
    assert out.meta == {"num_samples": 100}
    assert out.current_round == 3
    assert out.params_type is ParamsType.DIFF
    assert out.params is not None
    np.testing.assert_array_equal(out.params["steps"], [5])
    assert out.params["w"].dtype == np.float32
    assert out.params["w"].shape == (1000, 10)


@pytest.mark.parametrize("flt", ALL, ids=repr)
def test_full_models_are_refused(flt: Filter) -> None:
    model = _update()
    model.params_type = ParamsType.FULL
    with pytest.raises(FilterError, match="DIFF"):
        flt(model, _ctx())


@pytest.mark.parametrize("flt", ALL, ids=repr)
def test_deterministic_under_seeded_rng(flt: Filter) -> None:
    a, b = flt(_update(), _ctx(7)), flt(_update(), _ctx(7))
    np.testing.assert_array_equal(_flat(a), _flat(b))


def test_gaussian_clipping_bound_holds() -> None:
    out = GaussianPrivacy(clip_norm=2.0, noise_multiplier=0.0)(_update(), _ctx())
    assert np.linalg.norm(_flat(out)) <= 2.0 + 1e-5


def test_gaussian_noise_std_matches() -> None:
    zeros = FLModel(params={"w": np.zeros(200_000)}, params_type=ParamsType.DIFF)
    out = GaussianPrivacy(clip_norm=0.5, noise_multiplier=1.3)(zeros, _ctx(42))
    assert out.params is not None
    std = float(np.std(out.params["w"]))
    assert std == pytest.approx(1.3 * 0.5, rel=0.05)


def test_gaussian_no_noise_big_clip_is_identity() -> None:
    model = _update()
    out = GaussianPrivacy(clip_norm=1e9, noise_multiplier=0.0)(model, _ctx())
    assert out.params is not None and model.params is not None
    for name, array in model.params.items():
        np.testing.assert_array_equal(out.params[name], array)


@pytest.mark.parametrize(
    "kwargs",
    [{"clip_norm": 0.0, "noise_multiplier": 1.0}, {"clip_norm": 1.0, "noise_multiplier": -1.0}],
)
def test_gaussian_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GaussianPrivacy(kwargs["clip_norm"], kwargs["noise_multiplier"])


def test_percentile_zeros_and_clips() -> None:
    out = PercentilePrivacy(percentile=30, gamma=0.5)(_update(), _ctx())
    flat = _flat(out)
    assert np.mean(flat == 0) == pytest.approx(0.30, abs=0.01)
    assert np.max(np.abs(flat)) <= 0.5


@pytest.mark.parametrize("percentile", [0, 100])
def test_percentile_rejects_bad_percentile(percentile: int) -> None:
    with pytest.raises(ValueError, match="percentile"):
        PercentilePrivacy(percentile=percentile)


def test_svt_releases_at_most_fraction_within_gamma() -> None:
    model = _update()
    fraction, gamma = 0.1, 0.05
    out = SVTPrivacy(fraction=fraction, epsilon=1.0, noise_var=1.0, gamma=gamma, tau=1e-3)(
        model, _ctx()
    )
    flat = _flat(out)
    n = flat.size
    assert 0 < np.count_nonzero(flat) <= math.ceil(fraction * n)
    # released values are clipped after their Laplace noise, so gamma bounds them exactly
    assert np.max(np.abs(flat)) <= gamma + 1e-7


def test_svt_defaults_run() -> None:
    flat = _flat(SVTPrivacy()(_update(), _ctx()))
    assert np.count_nonzero(flat) <= math.ceil(0.1 * flat.size)
    assert np.max(np.abs(flat)) <= 1e-5 + 1e-9


def test_empty_update_passes() -> None:
    empty = FLModel(params={}, params_type=ParamsType.DIFF)
    for flt in ALL:
        assert flt(empty, _ctx()).params == {}
