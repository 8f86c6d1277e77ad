"""Median, trimmed mean and (Multi-)Krum against plain numpy references, outliers, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fedra.aggregators import (
    AGGREGATORS,
    KrumAggregator,
    MedianAggregator,
    TrimmedMeanAggregator,
    WeightedAggregator,
    make_aggregator,
)
from fedra.aggregators.robust import Aggregator
from fedra.core import NUM_SAMPLES, FLModel, ParamsType, WorkflowError

RNG = np.random.default_rng(7)
#: Six honest updates near 1.0, then one Byzantine update far away.
HONEST = [
    {"w": 1.0 + 0.05 * RNG.standard_normal((3, 2)), "b": 1.0 + 0.05 * RNG.standard_normal(4)}
    for _ in range(6)
]
BYZANTINE = {"w": np.full((3, 2), 1e3), "b": np.full(4, -1e3)}
ALL = [*HONEST, BYZANTINE]


def _aggregate(
    agg: Aggregator, updates: list[dict[str, np.ndarray]], params_type: str = "full"
) -> FLModel:
    for i, params in enumerate(updates):
        agg.accept(
            FLModel(
                params=params,
                params_type=params_type,  # type: ignore[arg-type]
                metrics={"loss": float(i)},
                meta={NUM_SAMPLES: i + 1},
            )
        )
    return agg.result()


def _honest_mean(name: str) -> np.ndarray:
    return np.mean([u[name] for u in HONEST], axis=0)


def _trimmed_reference(values: np.ndarray, k: int) -> np.ndarray:
    ordered = np.sort(values, axis=0)
    return ordered[k : len(values) - k].mean(axis=0)


def _krum_reference(updates: list[dict[str, np.ndarray]], f: int, multi: int) -> np.ndarray:
    flat = [np.concatenate([u[k].ravel() for k in sorted(u)]) for u in updates]
    n = len(flat)
    scores = []
    for i in range(n):
        dists = sorted(float(np.sum((flat[i] - flat[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(dists[: n - f - 2]))
    return np.sort(np.argsort(scores, kind="stable")[:multi])


@pytest.mark.parametrize("params_type", ["full", "diff"])
def test_median_matches_numpy_and_resists_outlier(params_type: str) -> None:
    out = _aggregate(MedianAggregator(), ALL, params_type)
    assert out.params is not None
    assert out.params_type == ParamsType(params_type)
    for name in ("w", "b"):
        np.testing.assert_allclose(out.params[name], np.median([u[name] for u in ALL], axis=0))
        assert np.max(np.abs(out.params[name] - _honest_mean(name))) < 0.2
    mean = _aggregate(WeightedAggregator(), ALL).params
    assert mean is not None
    assert np.max(np.abs(mean["w"] - _honest_mean("w"))) > 100  # FedAvg is dragged away


@pytest.mark.parametrize(("ratio", "k"), [(0.0, 0), (0.1, 0), (0.15, 1), (0.3, 2), (0.45, 3)])
def test_trimmed_mean_matches_sorting_reference(ratio: float, k: int) -> None:
    out = _aggregate(TrimmedMeanAggregator(trim_ratio=ratio), ALL)
    assert out.params is not None
    for name in ("w", "b"):
        stacked = np.stack([u[name] for u in ALL])
        np.testing.assert_allclose(out.params[name], _trimmed_reference(stacked, k), rtol=1e-12)
        if k:
            assert np.max(np.abs(out.params[name] - _honest_mean(name))) < 0.2


@pytest.mark.parametrize(("f", "multi"), [(0, 1), (1, 1), (2, 1), (1, 3), (2, 5)])
def test_krum_matches_explicit_distances(f: int, multi: int) -> None:
    out = _aggregate(KrumAggregator(num_byzantine=f, multi=multi), ALL)
    assert out.params is not None
    selected = _krum_reference(ALL, f, multi)
    assert out.meta["krum_selected"] == selected.tolist()
    assert 6 not in out.meta["krum_selected"]  # the Byzantine update is never picked
    for name in ("w", "b"):
        expected = np.mean([ALL[i][name] for i in selected], axis=0)
        np.testing.assert_allclose(out.params[name], expected, rtol=1e-12)
        assert np.max(np.abs(out.params[name] - _honest_mean(name))) < 0.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("name", ["median", "trimmed_mean", "krum"])
def test_output_dtype_is_input_dtype(name: str, dtype: type) -> None:
    # Krum: updates 1, 2, 3 tie for the lowest score, so Multi-Krum of 3 averages them.
    args = {"num_byzantine": 1, "multi": 3} if name == "krum" else {}
    updates = [{"w": np.arange(4).astype(dtype) + i} for i in range(5)]
    out = _aggregate(make_aggregator(name, **args), updates)
    assert out.params is not None
    assert out.params["w"].dtype == dtype
    np.testing.assert_allclose(out.params["w"], np.arange(4) + 2)


@pytest.mark.parametrize("name", ["median", "trimmed_mean", "krum"])
def test_metrics_are_weighted_like_fedavg(name: str) -> None:
    args = {"num_byzantine": 1} if name == "krum" else {}
    agg = make_aggregator(name, **args)
    out = _aggregate(agg, ALL)
    reference = _aggregate(WeightedAggregator(), ALL)
    assert out.metrics == pytest.approx(reference.metrics)
    assert agg.count == 7
    assert agg.total_weight == pytest.approx(28.0)
    assert out.meta["num_results"] == 7


def test_too_few_results() -> None:
    with pytest.raises(WorkflowError, match="more than 4 results, got 4"):
        _aggregate(KrumAggregator(num_byzantine=1), ALL[:4])
    with pytest.raises(WorkflowError, match="multi=5"):
        _aggregate(KrumAggregator(num_byzantine=1, multi=5), ALL[:5])
    with pytest.raises(WorkflowError, match="drops 4 of 4"):
        _aggregate(TrimmedMeanAggregator(trim_ratio=0.5), ALL[:4])
    # trim_ratio 0.5 with an odd count keeps the middle value: the median.
    out = _aggregate(TrimmedMeanAggregator(trim_ratio=0.5), ALL[:5])
    assert out.params is not None
    np.testing.assert_allclose(out.params["b"], np.median([u["b"] for u in ALL[:5]], axis=0))


@pytest.mark.parametrize("name", ["median", "trimmed_mean", "krum"])
def test_mismatched_results_are_workflow_errors(name: str) -> None:
    args = {"num_byzantine": 0} if name == "krum" else {}
    agg = make_aggregator(name, **args)
    agg.accept(FLModel(params={"w": np.zeros(3)}))
    with pytest.raises(WorkflowError, match="keys"):
        agg.accept(FLModel(params={"v": np.zeros(3)}))
    with pytest.raises(WorkflowError, match="shape"):
        agg.accept(FLModel(params={"w": np.zeros(4)}))
    with pytest.raises(WorkflowError, match="type"):
        agg.accept(FLModel(params={"w": np.zeros(3)}, params_type=ParamsType.DIFF))


def test_no_params_gives_no_params() -> None:
    agg = MedianAggregator()
    agg.accept(FLModel(metrics={"accuracy": 0.5}))
    out = agg.result()
    assert out.params is None
    assert out.metrics == {"accuracy": 0.5}


def test_inputs_are_not_modified() -> None:
    updates = [{"w": np.arange(3.0) * i} for i in range(5)]
    for u in updates:
        u["w"].setflags(write=False)
    for agg in (MedianAggregator(), TrimmedMeanAggregator(0.2), KrumAggregator(1, multi=2)):
        _aggregate(agg, updates)
    np.testing.assert_array_equal(updates[3]["w"], [0.0, 3.0, 6.0])


def test_factory_and_argument_errors() -> None:
    assert set(AGGREGATORS) == {
        "weighted",
        "median",
        "trimmed_mean",
        "krum",
        "dp_gaussian",
        "he_weighted",
    }
    assert isinstance(make_aggregator(), WeightedAggregator)
    assert isinstance(make_aggregator("trimmed_mean", trim_ratio=0.2), TrimmedMeanAggregator)
    with pytest.raises(ValueError, match="krum"):
        make_aggregator("mean")
    with pytest.raises(ValueError):
        TrimmedMeanAggregator(trim_ratio=0.6)
    with pytest.raises(ValueError):
        KrumAggregator(num_byzantine=-1)
    with pytest.raises(ValueError):
        KrumAggregator(num_byzantine=1, multi=0)
