"""Privacy filters for model updates: the Gaussian mechanism, percentile and SVT sparsification.

All three work on a site's update (``params_type=DIFF``) over its floating-point params,
flattened in sorted name order; integer params (step counters, ...) pass through unchanged, and
so does a model without params (a validation result's metrics). Randomness comes from
``ctx.rng`` only, so a seeded generator reproduces the output.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from fedra.core import FLModel
from fedra.filters._util import flatten, float_names, replace_params, require_diff, unflatten
from fedra.filters.accounting import gaussian_epsilon
from fedra.filters.base import FilterContext


class GaussianPrivacy:
    """Clip the update's L2 norm, then add Gaussian noise (the Gaussian mechanism).

    Protects: any single site's contribution to a round. The update's global L2 norm over
    all float params is clipped to ``clip_norm`` (bounding its sensitivity), then every
    coordinate gets independent ``N(0, (noise_multiplier * clip_norm)**2)`` noise.

    Parameters:
        clip_norm: largest L2 norm an update may have (> 0).
        noise_multiplier: noise std as a multiple of ``clip_norm`` (>= 0; 0 only clips).
        scope: ``"local"`` (noise added on the site, local DP). For central DP (noise added
            once by the server, after clipping each site's update) use FedAvg's
            ``aggregator: dp_gaussian`` instead.
        delta: when set (0 < delta < 1) and there is noise, the filtered model's metrics get
            ``dp_epsilon``: the eps this site has spent after ``ctx.round`` rounds (RDP accountant,
            :mod:`fedra.filters.accounting`, no subsampling; an upper bound when the site skipped
            rounds).

    References: Abadi et al., "Deep Learning with Differential Privacy", CCS 2016;
    McMahan et al., "Learning Differentially Private Recurrent Language Models", ICLR 2018.
    """

    def __init__(
        self,
        clip_norm: float,
        noise_multiplier: float,
        scope: Literal["local"] = "local",
        delta: float | None = None,
    ) -> None:
        if not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip_norm must be finite and > 0, got {clip_norm!r}")
        if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier!r}")
        if scope != "local":
            raise ValueError(f"scope must be 'local', got {scope!r}")
        if delta is not None and not (math.isfinite(delta) and 0 < delta < 1):
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.scope = scope
        self.delta = delta

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the clipped and noised update."""
        if model.params is None:
            return model
        params = require_diff(model, type(self).__name__)
        names = float_names(params)
        vector = flatten(params, names)
        norm = float(np.linalg.norm(vector))
        if norm > self.clip_norm:
            vector = vector * (self.clip_norm / norm)
        if self.noise_multiplier > 0:
            std = self.noise_multiplier * self.clip_norm
            vector = vector + ctx.rng.normal(0.0, std, size=vector.shape)
        out = replace_params(model, unflatten(vector, params, names))
        if self.delta is not None and self.noise_multiplier > 0:
            rounds = ctx.round if ctx.round is not None and ctx.round > 0 else 1
            out.metrics["dp_epsilon"] = gaussian_epsilon(self.noise_multiplier, rounds, self.delta)
        return out

    def __repr__(self) -> str:
        return (
            f"GaussianPrivacy(clip_norm={self.clip_norm}, noise_multiplier={self.noise_multiplier})"
        )


class PercentilePrivacy:
    """Share only the largest coordinates of an update, clipped (selective parameter sharing).

    Protects: the exact values of an update. Coordinates whose absolute value is below the
    ``percentile``-th percentile of all ``|diff|`` become 0; the rest are clipped to
    ``[-gamma, gamma]``. Deterministic; no formal DP guarantee on its own.

    Parameters:
        percentile: percentile of ``|diff|`` under which coordinates are zeroed (0 < p < 100).
        gamma: clipping bound for the shared coordinates (> 0).

    Reference: Shokri & Shmatikov, "Privacy-Preserving Deep Learning", CCS 2015 (as in
    NVFlare's ``PercentilePrivacy``).
    """

    def __init__(self, percentile: int = 10, gamma: float = 0.01) -> None:
        if not 0 < percentile < 100:
            raise ValueError(f"percentile must be in (0, 100), got {percentile!r}")
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be finite and > 0, got {gamma!r}")
        self.percentile = percentile
        self.gamma = float(gamma)

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the sparsified, clipped update."""
        if model.params is None:
            return model
        params = require_diff(model, type(self).__name__)
        names = float_names(params)
        vector = flatten(params, names)
        if vector.size:
            cutoff = np.percentile(np.abs(vector), self.percentile)
            vector = np.where(np.abs(vector) < cutoff, 0.0, vector)
            vector = np.clip(vector, -self.gamma, self.gamma)
        return replace_params(model, unflatten(vector, params, names))

    def __repr__(self) -> str:
        return f"PercentilePrivacy(percentile={self.percentile}, gamma={self.gamma})"


class SVTPrivacy:
    """Release a noisy, clipped fraction of an update chosen by the sparse vector technique.

    Protects: a site's update under (epsilon-)differential privacy for the selection step.
    Each coordinate's clipped magnitude ``|clip(x, gamma)|`` plus Laplace noise is compared
    with a noisy threshold ``tau + Lap(2*gamma/epsilon)``; coordinates above it are
    candidates (re-queried with fresh noise until enough are found or a pass limit is hit).
    Up to ``ceil(fraction * n)`` of them, drawn without replacement, are released as
    ``clip(x + Lap(2*gamma/noise_var), -gamma, gamma)``; every other coordinate is 0.
    So at most ``ceil(fraction * n)`` coordinates are non-zero, each within ``[-gamma, gamma]``.

    Parameters:
        fraction: largest share of coordinates released (0 < fraction <= 1).
        epsilon: privacy budget of the threshold/selection step (> 0); the query noise uses
            ``epsilon * (2 * n_upload) ** (2/3)`` as in Lyu et al.
        noise_var: budget of the released values (> 0); their noise is ``Lap(2*gamma/noise_var)``.
        gamma: clipping bound (sensitivity) of each coordinate (> 0).
        tau: base threshold on the clipped magnitude (>= 0).

    Reference: Lyu, Su & Li, "Understanding the Sparse Vector Technique for Differential
    Privacy", VLDB 2017; NVFlare's ``SVTPrivacy``.
    """

    #: passes of re-queried noise before giving up on filling the quota.
    MAX_PASSES = 100

    def __init__(
        self,
        fraction: float = 0.1,
        epsilon: float = 0.1,
        noise_var: float = 0.1,
        gamma: float = 1e-5,
        tau: float = 1e-6,
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        for name, value in (("epsilon", epsilon), ("noise_var", noise_var), ("gamma", gamma)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if not (math.isfinite(tau) and tau >= 0):
            raise ValueError(f"tau must be finite and >= 0, got {tau!r}")
        self.fraction = float(fraction)
        self.epsilon = float(epsilon)
        self.noise_var = float(noise_var)
        self.gamma = float(gamma)
        self.tau = float(tau)

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the sparse, noisy update."""
        if model.params is None:
            return model
        params = require_diff(model, type(self).__name__)
        names = float_names(params)
        vector = flatten(params, names)
        out = np.zeros_like(vector)
        n_upload = min(math.ceil(vector.size * self.fraction), vector.size)
        if n_upload:
            rng = ctx.rng
            threshold = self.tau + rng.laplace(scale=2.0 * self.gamma / self.epsilon)
            eps_query = self.epsilon * (2.0 * n_upload) ** (2.0 / 3.0)
            query_scale = 4.0 * self.gamma * n_upload / eps_query
            magnitude = np.abs(np.clip(vector, -self.gamma, self.gamma))
            candidates = np.arange(vector.size)
            accepted: list[int] = []
            for _ in range(self.MAX_PASSES):
                if len(accepted) >= n_upload or not candidates.size:
                    break
                noisy = magnitude[candidates] + rng.laplace(scale=query_scale, size=candidates.size)
                above = noisy >= threshold
                accepted.extend(candidates[above].tolist())
                candidates = candidates[~above]
            chosen = np.asarray(accepted, dtype=np.int64)
            if chosen.size > n_upload:
                chosen = rng.choice(chosen, size=n_upload, replace=False)
            noise = rng.laplace(scale=2.0 * self.gamma / self.noise_var, size=chosen.size)
            out[chosen] = np.clip(vector[chosen] + noise, -self.gamma, self.gamma)
        return replace_params(model, unflatten(out, params, names))

    def __repr__(self) -> str:
        return (
            f"SVTPrivacy(fraction={self.fraction}, epsilon={self.epsilon}, "
            f"noise_var={self.noise_var}, gamma={self.gamma}, tau={self.tau})"
        )
