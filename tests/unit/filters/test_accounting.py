"""The RDP accountant against closed forms, published values, numerical integration and the
exact privacy curve of the Gaussian mechanism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import logsumexp

from fedra.core import FLModel, ParamsType
from fedra.filters import (
    DEFAULT_ORDERS,
    INTEGER_ORDERS,
    FilterContext,
    GaussianPrivacy,
    RdpAccountant,
    gaussian_epsilon,
    gaussian_rdp,
    rdp_to_epsilon,
)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.71828, 10.0])
def test_no_sampling_is_the_closed_form(sigma: float) -> None:
    orders = [1.01, 1.5, 2.0, 3.14159, 32.0, 256.0]
    assert gaussian_rdp(sigma, 1.0, orders) == pytest.approx([a / (2 * sigma**2) for a in orders])


def test_sampled_rdp_matches_published_values() -> None:
    # google/differential-privacy, dp_accounting rdp_privacy_accountant_test.py,
    # test_compute_rdp_poisson_sampled_gaussian: q=0.01, sigma=2.5, 50 steps, integer orders.
    rdp = [50 * r for r in gaussian_rdp(2.5, 0.01, [5, 50, 100])]
    np.testing.assert_allclose(rdp, [2.18075656e-03, 2.38460375e-02, 1.67416308e02], rtol=1e-4)


def test_conversion_matches_published_values() -> None:
    # Same test file, test_compute_epsilon_delta_pure_dp: constant RDP 1.1 at orders 2..32.
    eps, order = rdp_to_epsilon([1.1] * 31, range(2, 33), 1e-5)
    assert eps == pytest.approx(1.32783806176, abs=1e-9)
    assert order == 32
    # test_compute_epsilon_delta_gaussian: sigma = 4.530877117 is exactly (1, 1e-6)-DP.
    orders = [0.001 * i for i in range(1001, 100_000)]
    eps, _ = rdp_to_epsilon(gaussian_rdp(4.530877117, 1.0, orders), orders, 1e-6)
    assert eps == pytest.approx(1.0, abs=1e-6)


def _log_a_by_integration(q: float, sigma: float, alpha: int) -> float:
    """log E_{z ~ N(0, sigma^2)}[((1-q) + q * N(1, sigma^2)(z) / N(0, sigma^2)(z))^alpha], the
    definition of A_alpha, integrated on a fine grid in log space (no binomial expansion)."""
    z = np.linspace(-12 * sigma - 5, 24 * sigma + alpha / sigma**2 + 5, 400_001)
    log_pdf = -(z**2) / (2 * sigma**2) - math.log(sigma * math.sqrt(2 * math.pi))
    log_ratio = np.logaddexp(math.log1p(-q), math.log(q) + (2 * z - 1) / (2 * sigma**2))
    return float(logsumexp(log_pdf + alpha * log_ratio) + math.log(z[1] - z[0]))


@pytest.mark.parametrize(
    ("q", "sigma", "alpha"),
    [(0.01, 1.0, 8), (0.1, 2.0, 20), (0.5, 5.0, 32), (0.05, 1.5, 12), (0.01, 0.7, 40)],
)
def test_sampled_rdp_matches_the_integral_definition(q: float, sigma: float, alpha: int) -> None:
    (rdp,) = gaussian_rdp(sigma, q, [alpha])
    expected = _log_a_by_integration(q, sigma, alpha) / (alpha - 1)
    assert rdp == pytest.approx(expected, rel=1e-6, abs=1e-10)


def _exact_delta(eps: float, s: float) -> float:
    """The tight delta(eps) of a Gaussian mechanism with noise/sensitivity ratio ``s``
    (Balle & Wang, "Improving the Gaussian Mechanism for Differential Privacy", ICML 2018)."""
    first = stats.norm.logcdf(-eps * s + 1 / (2 * s))
    second = eps + stats.norm.logcdf(-eps * s - 1 / (2 * s))
    return math.exp(first) - math.exp(second)


@pytest.mark.parametrize(
    ("sigma", "steps", "delta"),
    [(1.0, 1, 1e-5), (4.0, 50, 1e-6), (10.0, 1000, 1e-5), (5.0, 20, 1e-5), (20.0, 100, 1e-5)],
)
def test_epsilon_is_sound_and_close_to_the_exact_curve(
    sigma: float, steps: int, delta: float
) -> None:
    # T Gaussian mechanisms of noise sigma compose to one of noise sigma / sqrt(T).
    s = sigma / math.sqrt(steps)
    exact = brentq(lambda e: _exact_delta(e, s) - delta, 1e-9, 40.0)
    eps = gaussian_epsilon(sigma, steps, delta)
    assert _exact_delta(eps, s) <= delta  # sound: the reported eps really gives delta
    assert exact <= eps <= 1.15 * exact  # and not loose


def test_monotone_in_every_parameter() -> None:
    base = {"noise_multiplier": 1.2, "steps": 30, "delta": 1e-5, "sample_rate": 0.1}
    eps = gaussian_epsilon(**base)  # type: ignore[arg-type]
    assert gaussian_epsilon(**{**base, "steps": 60}) > eps  # type: ignore[arg-type]
    assert gaussian_epsilon(**{**base, "sample_rate": 0.2}) > eps  # type: ignore[arg-type]
    assert gaussian_epsilon(**{**base, "noise_multiplier": 2.0}) < eps  # type: ignore[arg-type]
    assert gaussian_epsilon(**{**base, "delta": 1e-3}) < eps  # type: ignore[arg-type]
    # Sampling amplifies privacy: q < 1 never costs more than q = 1.
    assert eps < gaussian_epsilon(**{**base, "sample_rate": 1.0})  # type: ignore[arg-type]


def test_edge_cases() -> None:
    assert gaussian_epsilon(1.0, 0, 1e-5) == 0.0
    assert gaussian_epsilon(0.0, 3, 1e-5) == math.inf
    assert gaussian_epsilon(1.0, 10, 1e-5, sample_rate=0.0) == 0.0
    assert gaussian_rdp(1.0, 0.5) == gaussian_rdp(1.0, 0.5, INTEGER_ORDERS)
    assert len(gaussian_rdp(1.0)) == len(DEFAULT_ORDERS)


@pytest.mark.parametrize(
    "call",
    [
        lambda: gaussian_rdp(-1.0),
        lambda: gaussian_rdp(math.nan),
        lambda: gaussian_rdp(1.0, 1.5),
        lambda: gaussian_rdp(1.0, 0.5, [2.5]),  # fractional order with sampling
        lambda: gaussian_rdp(1.0, 1.0, [1.0]),
        lambda: gaussian_rdp(1.0, 1.0, []),
        lambda: gaussian_epsilon(1.0, -1, 1e-5),
        lambda: rdp_to_epsilon([0.1], [2.0], 0.0),
        lambda: rdp_to_epsilon([0.1], [2.0], 1.0),
        lambda: rdp_to_epsilon([0.1, 0.2], [2.0], 1e-5),
        lambda: RdpAccountant().step(1.0, 1.0, -2),
    ],
)
def test_bad_input_is_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_accountant_adds_heterogeneous_steps() -> None:
    accountant = RdpAccountant([2.0, 8.0])
    accountant.step(1.0, count=3)
    accountant.step(2.0, count=4)
    expected = [3 * a / 2 + 4 * a / 8 for a in (2.0, 8.0)]
    assert accountant.rdp() == pytest.approx(expected)
    assert accountant.epsilon(1e-5) == pytest.approx(rdp_to_epsilon(expected, [2.0, 8.0], 1e-5)[0])
    sampled = RdpAccountant()
    sampled.step(1.0, 0.1, 5)
    assert sampled.orders_used() == INTEGER_ORDERS
    assert RdpAccountant().epsilon(1e-5) == 0.0


def test_gaussian_privacy_reports_the_epsilon_spent_by_its_round() -> None:
    sigma, delta = 1.3, 1e-5
    flt = GaussianPrivacy(clip_norm=1.0, noise_multiplier=sigma, delta=delta)
    update = FLModel(params={"w": np.ones(4)}, params_type=ParamsType.DIFF, metrics={"loss": 1.0})
    spent = []
    for round_num in (1, 4, 9):
        ctx = FilterContext("site-1", "train", "task_result", round_num, np.random.default_rng(0))
        out = flt(update, ctx)
        spent.append(out.metrics["dp_epsilon"])
        # r rounds of noise sigma are one Gaussian mechanism of noise sigma / sqrt(r).
        assert out.metrics["dp_epsilon"] == pytest.approx(
            gaussian_epsilon(sigma / math.sqrt(round_num), 1, delta)
        )
        assert out.metrics["loss"] == 1.0
    assert spent == sorted(spent)
    assert "dp_epsilon" not in update.metrics  # the input is not changed
    no_delta = GaussianPrivacy(1.0, sigma)(update, ctx)
    assert "dp_epsilon" not in no_delta.metrics
    with pytest.raises(ValueError, match="delta"):
        GaussianPrivacy(1.0, 1.0, delta=2.0)


def test_privacy_filters_pass_models_without_params() -> None:
    metrics_only = FLModel(metrics={"accuracy": 0.9})
    ctx = FilterContext("site-1", "validate", "task_result", 2, np.random.default_rng(0))
    assert GaussianPrivacy(1.0, 1.0, delta=1e-5)(metrics_only, ctx) is metrics_only
