"""Privacy accounting: Renyi DP of the (Poisson-subsampled) Gaussian mechanism, and (eps, delta).

The Gaussian mechanism with noise multiplier ``sigma`` (noise std = ``sigma`` times the L2
sensitivity) has Renyi DP ``RDP(alpha) = alpha / (2 sigma^2)`` at every order ``alpha > 1``
(Mironov, "Renyi Differential Privacy", CSF 2017). Run on a Poisson sample of rate ``q``
(each record, or each site, taken independently with probability ``q``), its RDP at an
integer order ``alpha >= 2`` is ``log(A_alpha) / (alpha - 1)`` with

    A_alpha = sum_{k=0..alpha} C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2))

(Mironov, Talwar & Zhang, "Renyi Differential Privacy of the Sampled Gaussian Mechanism",
2019, section 3.3; add/remove-one neighbours). Only integer orders are supported when
``q < 1``. RDP composes by addition over steps; the total becomes (eps, delta) with the
conversion of Balle et al., "Hypothesis Testing Interpretations and Renyi Differential
Privacy", AISTATS 2020 (Thm. 21):

    eps = min over alpha of
          RDP(alpha) + log((alpha-1)/alpha) - (log(delta) + log(alpha)) / (alpha - 1)

which is never worse than the classic ``RDP(alpha) + log(1/delta) / (alpha - 1)``.

Pure functions of floats (numpy for the sums): no state but the accountant's, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Orders tried when none are given: fine ones below 12 (they matter for large eps), integers above.
DEFAULT_ORDERS: tuple[float, ...] = (
    *(1.0 + x / 10.0 for x in range(1, 100)),
    *(float(a) for a in range(12, 257)),
)
#: Orders valid for a subsampled mechanism (``q < 1``): integers only.
INTEGER_ORDERS: tuple[float, ...] = tuple(float(a) for a in range(2, 257))


def _check_sigma(noise_multiplier: float) -> float:
    if isinstance(noise_multiplier, bool) or not (
        math.isfinite(noise_multiplier) and noise_multiplier >= 0
    ):
        raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier!r}")
    return float(noise_multiplier)


def _check_rate(sample_rate: float) -> float:
    if isinstance(sample_rate, bool) or not 0 <= sample_rate <= 1:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate!r}")
    return float(sample_rate)


def _check_orders(orders: Sequence[float], integer: bool) -> tuple[float, ...]:
    checked = tuple(float(a) for a in orders)
    if not checked:
        raise ValueError("orders must not be empty")
    for a in checked:
        if not (math.isfinite(a) and a > 1):
            raise ValueError(f"every RDP order must be finite and > 1, got {a!r}")
        if integer and a != int(a):
            raise ValueError(
                f"a subsampled Gaussian (sample_rate < 1) needs integer orders, got {a!r}"
            )
    return checked


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    """``log(A_alpha)`` of the sampled Gaussian mechanism for an integer order (0 < q < 1),
    summed in log space (no overflow for large orders or small sigma)."""
    k = np.arange(alpha + 1, dtype=np.float64)
    # log C(alpha, k), built up as log C(alpha, k-1) + log((alpha - k + 1) / k).
    log_binom = np.zeros(alpha + 1)
    log_binom[1:] = np.cumsum(np.log((alpha - k[1:] + 1) / k[1:]))
    terms = (
        log_binom + k * math.log(q) + (alpha - k) * math.log1p(-q) + (k * k - k) / (2 * sigma**2)
    )
    top = float(np.max(terms))
    return top + math.log(float(np.sum(np.exp(terms - top))))


def gaussian_rdp(
    noise_multiplier: float,
    sample_rate: float = 1.0,
    orders: Sequence[float] | None = None,
) -> tuple[float, ...]:
    """RDP of one step of the (Poisson-subsampled) Gaussian mechanism, at each order.

    ``noise_multiplier`` is the noise std divided by the L2 sensitivity; ``sample_rate`` the
    Poisson sampling probability (1: no sampling). ``orders`` defaults to
    :data:`DEFAULT_ORDERS` (``q = 1``) or :data:`INTEGER_ORDERS` (``q < 1``). Infinite when
    there is no noise; 0 when nothing is sampled.
    """
    sigma = _check_sigma(noise_multiplier)
    q = _check_rate(sample_rate)
    if orders is None:
        orders = DEFAULT_ORDERS if q == 1 else INTEGER_ORDERS
    alphas = _check_orders(orders, integer=0 < q < 1)
    if q == 0:
        return tuple(0.0 for _ in alphas)
    if sigma == 0:
        return tuple(math.inf for _ in alphas)
    if q == 1:
        return tuple(a / (2 * sigma**2) for a in alphas)
    return tuple(_log_a_int(q, sigma, int(a)) / (a - 1) for a in alphas)


def rdp_to_epsilon(
    rdp: Sequence[float], orders: Sequence[float], delta: float
) -> tuple[float, float]:
    """The smallest eps over ``orders`` for the total ``rdp``, and the order that gives it.

    Uses the conversion of Balle et al. 2020 (module docstring). eps is infinite when every
    order's RDP is, 0 when one order's RDP is 0 (nothing was released), and never negative.
    """
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    alphas = _check_orders(orders, integer=False)
    if len(rdp) != len(alphas):
        raise ValueError(f"got {len(rdp)} RDP values for {len(alphas)} orders")
    best, best_order = math.inf, math.nan
    for value, a in zip(rdp, alphas, strict=True):
        if math.isnan(value) or value < 0:
            raise ValueError(f"RDP values must be >= 0, got {value!r} at order {a}")
        if value == 0:
            return 0.0, a  # a Renyi divergence of 0: the outputs do not depend on the data
        eps = value + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        if eps < best:
            best, best_order = eps, a
    return max(best, 0.0), best_order


def gaussian_epsilon(
    noise_multiplier: float,
    steps: int,
    delta: float,
    sample_rate: float = 1.0,
    orders: Sequence[float] | None = None,
) -> float:
    """eps after ``steps`` compositions of the (subsampled) Gaussian mechanism, for ``delta``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    accountant = RdpAccountant(orders)
    accountant.step(noise_multiplier, sample_rate, steps)
    return accountant.epsilon(delta)


@dataclass
class RdpAccountant:
    """Adds up the RDP of Gaussian-mechanism steps (possibly with different sigma and q).

    ``orders`` defaults to :data:`DEFAULT_ORDERS`, narrowed to the integer ones as soon as a
    subsampled step (``q < 1``) is recorded with default orders.
    """

    orders: Sequence[float] | None = None
    #: (noise_multiplier, sample_rate, steps) recorded so far.
    steps: list[tuple[float, float, int]] = field(default_factory=list)

    def step(self, noise_multiplier: float, sample_rate: float = 1.0, count: int = 1) -> None:
        """Record ``count`` steps of the Gaussian mechanism with this sigma and sampling rate."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an integer >= 0, got {count!r}")
        self.steps.append((_check_sigma(noise_multiplier), _check_rate(sample_rate), count))

    def _orders(self) -> tuple[float, ...]:
        if self.orders is not None:
            return tuple(self.orders)
        if any(0 < q < 1 for _, q, n in self.steps if n):
            return INTEGER_ORDERS
        return DEFAULT_ORDERS

    def rdp(self) -> tuple[float, ...]:
        """Total RDP at each of :meth:`orders_used`."""
        orders = self._orders()
        total = [0.0] * len(orders)
        for sigma, q, count in self.steps:
            if count == 0:
                continue
            for i, value in enumerate(gaussian_rdp(sigma, q, orders)):
                total[i] += count * value
        return tuple(total)

    def orders_used(self) -> tuple[float, ...]:
        """The orders :meth:`rdp` and :meth:`epsilon` work with."""
        return self._orders()

    def epsilon(self, delta: float) -> float:
        """eps spent so far for ``delta`` (0 when nothing was recorded)."""
        return rdp_to_epsilon(self.rdp(), self._orders(), delta)[0]
