"""dp_gaussian: clipping, the equal-weight mean, the noise scale, and the reported epsilon."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedra.aggregators import (
    AGGREGATORS,
    DPGaussianAggregator,
    apply_update,
    make_aggregator,
    start_round,
)
from fedra.core import FLModel, Params, ParamsType, WorkflowError
from fedra.filters import gaussian_epsilon


def _updates(n: int = 5, size: int = 6, seed: int = 3) -> list[Params]:
    """Updates of very different norms (0.1 to about 1000)."""
    rng = np.random.default_rng(seed)
    return [
        {"w": rng.normal(size=(size,)) * 10.0 ** (i - 1), "b": rng.normal(size=2)} for i in range(n)
    ]


def _aggregate(agg: DPGaussianAggregator, params: list[Params], **kw: object) -> FLModel:
    for i, p in enumerate(params):
        agg.accept(FLModel(params=p, params_type=ParamsType.DIFF, meta={"num_samples": i + 1}))
    return agg.result()


def _clipped_mean(updates: list[Params], clip: float) -> Params:
    """Each update scaled to norm <= clip (over all its params), then the unweighted mean."""
    scaled = []
    for u in updates:
        norm = math.sqrt(sum(float(np.sum(a**2)) for a in u.values()))
        factor = min(1.0, clip / norm)
        scaled.append({k: a * factor for k, a in u.items()})
    return {k: np.mean([s[k] for s in scaled], axis=0) for k in updates[0]}


def test_without_noise_it_is_the_clipped_equal_weight_mean() -> None:
    updates = _updates()
    out = _aggregate(DPGaussianAggregator(clip_norm=2.0, noise_multiplier=0.0), updates)
    assert out.params_type is ParamsType.DIFF and out.params is not None
    expected = _clipped_mean(updates, 2.0)
    for name in expected:
        np.testing.assert_allclose(out.params[name], expected[name], rtol=1e-12, atol=1e-15)
    assert out.meta["dp_clipped"] == sum(
        1 for u in updates if math.sqrt(sum(float(np.sum(a**2)) for a in u.values())) > 2.0
    )
    assert "dp_epsilon" not in out.metrics  # sigma = 0: no privacy, nothing claimed


def test_each_contribution_is_bounded_by_the_clip_norm() -> None:
    clip, n = 1.5, 6
    honest = _updates(n)
    baseline = _aggregate(DPGaussianAggregator(clip, 0.0), honest)
    for attack in (np.full(6, 1e9), np.full(6, -3e5), np.zeros(6)):
        poisoned = [*honest[:-1], {"w": attack, "b": np.array([1e12, 0.0])}]
        out = _aggregate(DPGaussianAggregator(clip, 0.0), poisoned)
        assert out.params is not None and baseline.params is not None
        moved = math.sqrt(
            sum(float(np.sum((out.params[k] - baseline.params[k]) ** 2)) for k in ("w", "b"))
        )
        # Replacing one site's update moves the mean by at most 2C/n.
        assert moved <= 2 * clip / n + 1e-12
    single = _aggregate(DPGaussianAggregator(clip, 0.0), [{"w": np.full(6, 50.0)}])
    assert single.params is not None
    assert float(np.linalg.norm(single.params["w"])) == pytest.approx(clip)


def test_noise_std_is_sigma_c_over_n() -> None:
    sigma, clip, n, size = 1.7, 0.8, 5, 60_000
    zeros = [{"w": np.zeros(size)} for _ in range(n)]
    out = _aggregate(DPGaussianAggregator(clip, sigma, seed=11), zeros)
    assert out.params is not None
    noise = out.params["w"]
    std = sigma * clip / n
    assert out.meta["dp_noise_std"] == pytest.approx(std)
    # (k-1) s^2 / std^2 follows chi-square(k-1) for Gaussian noise of this std.
    statistic = (size - 1) * float(np.var(noise, ddof=1)) / std**2
    assert stats.chi2.ppf(1e-6, size - 1) < statistic < stats.chi2.ppf(1 - 1e-6, size - 1)
    assert abs(float(np.mean(noise))) < 5 * std / math.sqrt(size)
    # Gaussian shape, not just the right variance.
    assert stats.kstest(noise / std, "norm").pvalue > 1e-6


def test_seed_reproduces_a_round_and_rounds_differ() -> None:
    def run(seed: int, round_num: int) -> np.ndarray:
        agg = DPGaussianAggregator(1.0, 1.0, seed=seed)
        agg.begin_round(FLModel(current_round=round_num))
        out = _aggregate(agg, [{"w": np.zeros(50)}] * 2)
        assert out.params is not None
        return out.params["w"]

    np.testing.assert_array_equal(run(5, 2), run(5, 2))
    assert not np.array_equal(run(5, 2), run(5, 3))
    assert not np.array_equal(run(5, 2), run(6, 2))


def test_full_params_become_updates_against_the_global_model() -> None:
    global_params = {"w": np.array([1.0, 2.0, 3.0], dtype=np.float32), "n": np.asarray(10)}
    sent = FLModel(params=global_params, current_round=4)
    agg = make_aggregator("dp_gaussian", clip_norm=1.0, noise_multiplier=0.0)
    start_round(agg, sent)
    site_models = [
        {"w": (np.array([1.0, 2.0, 3.0]) + d).astype(np.float32), "n": np.asarray(11)}
        for d in (np.array([0.3, 0.4, 0.0]), np.array([30.0, 0.0, 40.0]))
    ]
    for params in site_models:
        agg.accept(FLModel(params=params))  # FULL
    update = agg.result()
    assert update.params_type is ParamsType.DIFF and update.params is not None
    # (0.3, 0.4, 0) is within the bound; (30, 0, 40) has norm 50 and becomes (0.6, 0, 0.8).
    np.testing.assert_allclose(update.params["w"], [0.45, 0.2, 0.4], rtol=1e-6)
    assert update.params["w"].dtype == np.float32
    assert int(update.params["n"]) == 1  # integer params: plain mean of their differences
    new_global = apply_update(global_params, update)
    np.testing.assert_allclose(new_global["w"], [1.45, 2.2, 3.4], rtol=1e-6)
    assert int(new_global["n"]) == 11


def test_epsilon_is_reported_for_the_round() -> None:
    sigma, delta = 1.1, 1e-6
    spent = []
    for round_num in (1, 2, 10):
        agg = DPGaussianAggregator(1.0, sigma, delta=delta, seed=0)
        agg.begin_round(FLModel(params={"w": np.zeros(2)}, current_round=round_num))
        agg.accept(FLModel(params={"w": np.ones(2)}, metrics={"loss": 2.0}))
        out = agg.result()
        # r rounds of noise multiplier sigma are one Gaussian mechanism of sigma / sqrt(r).
        expected = gaussian_epsilon(sigma / math.sqrt(round_num), 1, delta)
        assert out.metrics["dp_epsilon"] == pytest.approx(expected)
        assert out.metrics["loss"] == 2.0
        assert out.meta["dp_delta"] == delta and out.meta["dp_round"] == round_num
        spent.append(out.metrics["dp_epsilon"])
    assert spent == sorted(spent)


def test_inputs_are_only_read() -> None:
    updates = _updates()
    for u in updates:
        for a in u.values():
            a.setflags(write=False)
    copies = [{k: a.copy() for k, a in u.items()} for u in updates]
    _aggregate(DPGaussianAggregator(1.0, 2.0, seed=1), updates)
    for u, c in zip(updates, copies, strict=True):
        for k in u:
            np.testing.assert_array_equal(u[k], c[k])


def test_refusals() -> None:
    agg = DPGaussianAggregator(1.0, 1.0)
    with pytest.raises(WorkflowError, match="initial model"):
        agg.accept(FLModel(params={"w": np.ones(2)}))  # FULL, no global model
    nan = FLModel(params={"w": np.array([np.nan, 1.0])}, params_type=ParamsType.DIFF)
    with pytest.raises(WorkflowError, match="RejectNonFinite"):
        DPGaussianAggregator(1.0, 1.0).accept(nan)
    mixed = DPGaussianAggregator(1.0, 0.0)
    mixed.accept(FLModel(params={"w": np.ones(2)}, params_type=ParamsType.DIFF))
    with pytest.raises(WorkflowError, match="keys"):
        mixed.accept(FLModel(params={"v": np.ones(2)}, params_type=ParamsType.DIFF))
    for kwargs in (
        {"clip_norm": 0.0, "noise_multiplier": 1.0},
        {"clip_norm": 1.0, "noise_multiplier": -1.0},
        {"clip_norm": 1.0, "noise_multiplier": 1.0, "delta": 1.0},
        {"clip_norm": 1.0, "noise_multiplier": 1.0, "seed": -1},
    ):
        with pytest.raises(ValueError):
            DPGaussianAggregator(**kwargs)  # type: ignore[arg-type]
    assert AGGREGATORS["dp_gaussian"] is DPGaussianAggregator
    empty = DPGaussianAggregator(1.0, 1.0).result()
    assert empty.params is None and empty.meta["num_results"] == 0
