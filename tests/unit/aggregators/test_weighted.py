"""WeightedAggregator and apply_update: streaming weighted means, dtypes, diffs, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fedra.aggregators.weighted as weighted
from fedra.aggregators import WeightedAggregator, apply_update
from fedra.core import NUM_SAMPLES, FLModel, ParamsType, WorkflowError, readonly


def _site(params: dict[str, np.ndarray], weight: float, **kw: object) -> FLModel:
    return FLModel(params=params, meta={NUM_SAMPLES: weight}, **kw)  # type: ignore[arg-type]


def _aggregate(models: list[FLModel]) -> FLModel:
    agg = WeightedAggregator()
    for model in models:
        agg.accept(model)
    return agg.result()


_weights = st.one_of(st.just(0), st.integers(1, 1000), st.floats(1e-3, 1e3))


@st.composite
def _rounds(draw: st.DrawFn) -> tuple[list[dict[str, np.ndarray]], list[float]]:
    n_sites = draw(st.integers(1, 10))
    shapes = draw(
        st.dictionaries(
            st.text("abcxyz._", min_size=1, max_size=6),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
            min_size=1,
            max_size=3,
        )
    )
    elements = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    sites = [
        {k: draw(hnp.arrays(np.float64, s, elements=elements)) for k, s in shapes.items()}
        for _ in range(n_sites)
    ]
    weights = draw(st.lists(_weights, min_size=n_sites, max_size=n_sites).filter(any))
    return sites, weights


@settings(max_examples=100, deadline=None)
@given(_rounds())
def test_weighted_mean_matches_numpy(data: tuple[list[dict[str, np.ndarray]], list[float]]) -> None:
    sites, weights = data
    originals = [{k: v.copy() for k, v in p.items()} for p in sites]
    result = _aggregate([_site(readonly(p), w) for p, w in zip(sites, weights, strict=True)])

    assert result.params is not None
    assert result.params.keys() == sites[0].keys()
    for name, got in result.params.items():
        expected = np.average(np.stack([p[name] for p in sites]), axis=0, weights=weights)
        assert got.dtype == np.float64
        assert got.shape == sites[0][name].shape
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert result.meta["num_results"] == len(sites)
    assert result.meta["total_weight"] == pytest.approx(sum(weights))
    # Incoming arrays are only read.
    for params, original in zip(sites, originals, strict=True):
        for name, array in params.items():
            np.testing.assert_array_equal(array, original[name])


def test_float32_stays_float32() -> None:
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    b = np.array([3.0, 6.0, 9.0], dtype=np.float32)
    result = _aggregate([_site({"w": a}, 1), _site({"w": b}, 3)])
    assert result.params is not None
    assert result.params["w"].dtype == np.float32
    np.testing.assert_allclose(result.params["w"], [2.5, 5.0, 7.5], rtol=1e-6)


def test_float16_stays_float16() -> None:
    a = np.array([1.0, 2.0], dtype=np.float16)
    result = _aggregate([_site({"w": a}, 1), _site({"w": a * 3}, 1)])
    assert result.params is not None
    assert result.params["w"].dtype == np.float16
    np.testing.assert_array_equal(result.params["w"], np.array([2.0, 4.0], dtype=np.float16))


def test_integer_params_round_and_keep_dtype() -> None:
    a = np.array([0, -3, 5], dtype=np.int32)
    ignored = np.array([100, 100, 100], dtype=np.int32)
    b = np.array([10, -4, 5], dtype=np.int32)
    result = _aggregate([_site({"w": a}, 1), _site({"w": ignored}, 0), _site({"w": b}, 2)])
    assert result.params is not None
    # (0 + 20)/3 = 6.67 -> 7 ; (-3 - 8)/3 = -3.67 -> -4 ; (5 + 10)/3 = 5 (zero weight: ignored)
    np.testing.assert_array_equal(result.params["w"], np.array([7, -4, 5], dtype=np.int32))
    assert result.params["w"].dtype == np.int32


def test_diff_updates_applied_to_global() -> None:
    base = {"w": np.array([1.0, 1.0]), "b": np.array(10.0), "steps": np.array([4], dtype=np.int64)}
    d1 = {"w": np.array([1.0, -1.0]), "b": np.array(2.0), "steps": np.array([2], dtype=np.int64)}
    d2 = {"w": np.array([3.0, 1.0]), "b": np.array(-2.0), "steps": np.array([2], dtype=np.int64)}
    update = _aggregate(
        [_site(d1, 1, params_type="diff"), _site(d2, 1, params_type=ParamsType.DIFF)]
    )
    assert update.params_type is ParamsType.DIFF
    merged = apply_update(readonly(base), update)
    np.testing.assert_array_equal(merged["w"], [3.0, 1.0])
    assert merged["b"] == 10.0
    np.testing.assert_array_equal(merged["steps"], [6])
    assert merged["steps"].dtype == np.int64
    np.testing.assert_array_equal(base["w"], [1.0, 1.0])  # the old global is untouched


def test_diff_missing_key_keeps_base_and_full_replaces() -> None:
    base = {"w": np.array([1.0]), "frozen": np.array([5.0])}
    merged = apply_update(base, FLModel(params={"w": np.array([0.5])}, params_type="diff"))
    assert merged["w"] == 1.5
    assert merged["frozen"] is base["frozen"]
    full = {"w": np.array([9.0])}
    assert apply_update(base, FLModel(params=full))["w"] is full["w"]
    assert apply_update(base, FLModel()) is base


def test_mismatched_keys_raise() -> None:
    agg = WeightedAggregator()
    agg.accept(_site({"w": np.zeros(2), "b": np.zeros(1)}, 1))
    with pytest.raises(WorkflowError, match="keys"):
        agg.accept(_site({"w": np.zeros(2), "c": np.zeros(1)}, 1))


def test_mismatched_shapes_raise() -> None:
    agg = WeightedAggregator()
    agg.accept(_site({"w": np.zeros((2, 3))}, 1))
    with pytest.raises(WorkflowError, match="'w'"):
        agg.accept(_site({"w": np.zeros((3, 2))}, 1))


def test_mismatched_params_types_raise() -> None:
    agg = WeightedAggregator()
    agg.accept(_site({"w": np.zeros(2)}, 1))
    with pytest.raises(WorkflowError):
        agg.accept(_site({"w": np.zeros(2)}, 1, params_type="diff"))
    expecting_full = WeightedAggregator(expected_type=ParamsType.FULL)
    with pytest.raises(WorkflowError):
        expecting_full.accept(_site({"w": np.zeros(2)}, 1, params_type="diff"))


def test_all_zero_weights_raise() -> None:
    agg = WeightedAggregator()
    agg.accept(_site({"w": np.ones(2)}, 0))
    agg.accept(_site({"w": np.ones(2)}, 0.0))
    with pytest.raises(WorkflowError, match="num_samples"):
        agg.result()


def test_metrics_weighted_mean() -> None:
    agg = WeightedAggregator()
    agg.accept(FLModel(metrics={"acc": 0.5, "loss": 2.0, "note": "x"}, meta={NUM_SAMPLES: 1}))
    agg.accept(FLModel(metrics={"acc": 0.8, "ok": True}, meta={NUM_SAMPLES: 3}))
    agg.accept(FLModel(metrics={"acc": 0.1}, meta={NUM_SAMPLES: 0}))
    metrics = agg.metrics()
    # acc: (0.5*1 + 0.8*3 + 0.1*0) / 4 ; loss only from the first site ; strings/bools ignored.
    assert metrics == {"acc": pytest.approx(0.725), "loss": pytest.approx(2.0)}
    result = agg.result()
    assert result.params is None
    assert result.metrics == metrics
    assert result.meta["num_results"] == 3


def test_chunked_folding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weighted, "CHUNK", 7)
    rng = np.random.default_rng(1)
    sites = [
        {
            "big": rng.normal(size=(5, 11)),  # 55 elements: 7 full chunks and a partial one
            "exact": rng.normal(size=(14,)),  # exactly two chunks
            "small": rng.normal(size=(3,)),
            "scalar": rng.normal(size=()),
            "transposed": rng.normal(size=(4, 9)).T,  # not C-contiguous
        }
        for _ in range(4)
    ]
    weights = [1, 2.5, 0, 4]
    result = _aggregate([_site(p, w) for p, w in zip(sites, weights, strict=True)])
    assert result.params is not None
    for name, got in result.params.items():
        expected = np.average(np.stack([p[name] for p in sites]), axis=0, weights=weights)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
