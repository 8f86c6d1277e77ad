"""Central differential privacy: clip every site's update, average, add Gaussian noise once.

DP-FedAvg with a fixed number of participants (McMahan et al., "Learning Differentially
Private Recurrent Language Models", ICLR 2018): each site's update (the difference to the
global model it received) is scaled to L2 norm at most ``C`` (``clip_norm``, over all float
params together), the ``n`` clipped updates are averaged with equal weights, and Gaussian noise
of std ``sigma * C / n`` (``sigma`` = ``noise_multiplier``) is added to every float coordinate
of the mean. That is the Gaussian mechanism on the sum (sensitivity ``C`` when one site's
contribution is added or removed, noise std ``sigma * C``) divided by ``n``, which is treated
as public. So each round is ``alpha / (2 sigma^2)``-RDP for one site's whole contribution
(site-level DP); the eps spent after ``r`` rounds, for ``delta``, is reported as the metric
``dp_epsilon`` (RDP accountant of :mod:`fedra.filters.accounting`, with no amplification by
sampling claimed: FedAvg's ``sample_fraction`` draws a fixed number of sites, not a Poisson
sample).

Equal weights, not ``num_samples``: a site's weight would scale its sensitivity, and the
number of samples is what a site reports about itself. Integer params (counters) are averaged
without clipping or noise (they are not protected), and so are the site metrics: only the
float params are private. Memory is one float64 accumulator the size of the model.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from fedra.aggregators.weighted import WeightedAggregator, _cast, refuse_encrypted
from fedra.core import (
    Array,
    FLModel,
    JsonCompatible,
    MetricValue,
    Params,
    ParamsType,
    WorkflowError,
)
from fedra.filters import gaussian_epsilon, l2_norm

log = logging.getLogger("fedra.aggregators")

#: Elements per folding step: a float64 scratch of 512 KiB that stays in cache.
CHUNK = 1 << 16


class DPGaussianAggregator:
    """Clipped, equally weighted mean of the updates plus Gaussian noise (central DP).

    Parameters (``aggregator_args`` of FedAvg and its variants):
        clip_norm: ``C``, the largest L2 norm a site's update may have (finite, > 0).
        noise_multiplier: ``sigma``; the mean gets noise of std ``sigma * C / n`` (>= 0; 0
            only clips, gives no privacy, and reports no ``dp_epsilon``).
        delta: the delta of the reported (eps, delta) (0 < delta < 1, default 1e-5; take it
            well below 1 / number of sites).
        seed: seeds the noise (with the round number) for reproducible tests. Leave it unset
            in production: anyone who knows the seed can subtract the noise.

    Sites may send updates (``params_type=DIFF``) or full params; full params are turned into
    updates against the global model of the round, which the workflow hands over through
    :meth:`begin_round`. The result is always an update (``DIFF``) that the workflow adds to
    the global model.
    """

    def __init__(
        self,
        clip_norm: float,
        noise_multiplier: float,
        delta: float = 1e-5,
        seed: int | None = None,
    ) -> None:
        if isinstance(clip_norm, bool) or not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip_norm must be finite and > 0, got {clip_norm!r}")
        if isinstance(noise_multiplier, bool) or not (
            math.isfinite(noise_multiplier) and noise_multiplier >= 0
        ):
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier!r}")
        if isinstance(delta, bool) or not (math.isfinite(delta) and 0 < delta < 1):
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an integer >= 0 or null, got {seed!r}")
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.delta = float(delta)
        self.seed = seed
        self._reference: Params | None = None
        self._round = 1
        self._metrics = WeightedAggregator()
        self._acc: dict[str, Array] | None = None
        self._dtypes: dict[str, np.dtype[np.generic]] = {}
        self._n = 0
        self._clipped = 0
        self._scratch = np.empty(CHUNK, dtype=np.float64)

    # -- the Aggregator protocol --------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of results accepted (with or without params)."""
        return self._metrics.count

    @property
    def total_weight(self) -> float:
        """Number of results whose params were folded in (each weighs 1)."""
        return float(self._n)

    def begin_round(self, sent: FLModel) -> None:
        """Take the model the sites received: the base of full params, and the round number."""
        self._reference = sent.params
        if sent.current_round is not None and sent.current_round > 0:
            self._round = sent.current_round

    def accept(self, model: FLModel) -> None:
        """Clip ``model``'s update and fold it into the sum; its arrays are only read."""
        refuse_encrypted(model, "dp_gaussian")
        self._metrics.accept(FLModel(metrics=model.metrics, meta=model.meta))
        if model.params is None:
            return
        params = model.params
        reference = (
            None if model.params_type is ParamsType.DIFF else self._checked_reference(params)
        )
        if self._acc is None:
            self._acc = {n: np.zeros(a.shape, dtype=np.float64) for n, a in params.items()}
            self._dtypes = {n: a.dtype for n, a in params.items()}
        elif params.keys() != self._acc.keys():
            missing = sorted(self._acc.keys() ^ params.keys())
            raise WorkflowError(f"result params differ from the others in keys {missing[:5]}")
        for name, array in params.items():
            if array.shape != self._acc[name].shape:
                raise WorkflowError(
                    f"param '{name}' has shape {array.shape}, expected {self._acc[name].shape}"
                )
        floats = {n for n, a in params.items() if np.issubdtype(a.dtype, np.floating)}
        norm = math.hypot(
            *(
                l2_norm(params[n], None if reference is None else reference[n])
                for n in sorted(floats)
            )
        )
        if not math.isfinite(norm):
            raise WorkflowError(
                "a site's update has NaN or Inf values: add RejectNonFinite to the server's "
                "result_filters to drop such results before they reach dp_gaussian"
            )
        scale = 1.0
        if norm > self.clip_norm:
            scale = self.clip_norm / norm
            self._clipped += 1
        for name, array in params.items():
            factor = scale if name in floats else 1.0
            base = None if reference is None else reference[name]
            _fold(self._acc[name], array, base, factor, self._scratch)
        self._n += 1

    def _checked_reference(self, params: Params) -> Params:
        """The round's global model, which full ``params`` are an update against."""
        if not self._reference:
            raise WorkflowError(
                "dp_gaussian got full params but has no global model to take the update "
                "against: start the job with an initial model (persistor), or have the sites "
                "send params_type=DIFF"
            )
        for name, array in params.items():
            base = self._reference.get(name)
            if base is None or base.shape != array.shape:
                raise WorkflowError(
                    f"param '{name}' of a result does not match the global model "
                    "(missing there, or another shape)"
                )
        return self._reference

    def result(self) -> FLModel:
        """The noisy mean update (``DIFF``); the aggregator is spent."""
        params: Params | None = None
        noise_std = self.noise_multiplier * self.clip_norm / self._n if self._n else 0.0
        if self._acc is not None:
            rng = np.random.default_rng(None if self.seed is None else [self.seed, self._round])
            params = {}
            for name in sorted(self._acc):
                mean = self._acc[name]
                mean /= self._n
                dtype = self._dtypes[name]
                if np.issubdtype(dtype, np.floating) and noise_std > 0:
                    mean += rng.normal(0.0, noise_std, size=mean.shape)
                params[name] = _cast(mean, dtype)
            self._acc = None
        meta: dict[str, JsonCompatible] = {
            "num_results": self.count,
            "total_weight": float(self._n),
            "dp_clip_norm": self.clip_norm,
            "dp_noise_multiplier": self.noise_multiplier,
            "dp_noise_std": noise_std,
            "dp_clipped": self._clipped,
            "dp_round": self._round,
        }
        metrics = self.metrics()
        if self.noise_multiplier > 0:
            epsilon = gaussian_epsilon(self.noise_multiplier, self._round, self.delta)
            metrics["dp_epsilon"] = epsilon
            meta.update(dp_epsilon=epsilon, dp_delta=self.delta)
            log.info(
                "dp_gaussian round %d: %d updates (%d clipped), noise std %.3g, "
                "spent epsilon %.4g at delta %g",
                self._round,
                self._n,
                self._clipped,
                noise_std,
                epsilon,
                self.delta,
            )
        return FLModel(params=params, params_type=ParamsType.DIFF, metrics=metrics, meta=meta)

    def metrics(self) -> dict[str, MetricValue]:
        """Mean of each numeric site metric, weighted by ``num_samples`` (not private)."""
        return self._metrics.metrics()

    def __repr__(self) -> str:
        return (
            f"DPGaussianAggregator(clip_norm={self.clip_norm}, "
            f"noise_multiplier={self.noise_multiplier}, delta={self.delta})"
        )


def _fold(acc: Array, array: Array, base: Array | None, factor: float, scratch: Array) -> None:
    """``acc += factor * (array - base)`` (or ``factor * array``) in float64, CHUNK elements at a
    time through ``scratch``: no model-sized temporary."""
    flat_acc = acc.reshape(-1)
    flat_in = array.reshape(-1)
    flat_base = None if base is None else base.reshape(-1)
    for start in range(0, flat_acc.size, CHUNK):
        stop = min(start + CHUNK, flat_acc.size)
        part = scratch[: stop - start]
        if flat_base is None:
            np.copyto(part, flat_in[start:stop], casting="unsafe")
        else:
            np.subtract(flat_in[start:stop], flat_base[start:stop], out=part, dtype=np.float64)
        if factor != 1.0:
            part *= factor
        flat_acc[start:stop] += part
