"""Byzantine-robust aggregation: coordinate-wise median, trimmed mean, and (Multi-)Krum.

Unlike :class:`~fedra.aggregators.WeightedAggregator`, which folds each result in and drops it,
these rules need every result of the round at once, so they keep them all: server memory is
the number of results times the model size (plus one stacked copy of one param at a time while
aggregating). That is the price of robustness. Incoming arrays are only read, never modified.

Params are unweighted here (one site, one vote: a weight is what a Byzantine site would lie
about); metrics are still averaged by ``num_samples``, through a composed WeightedAggregator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fedra.aggregators.dp import DPGaussianAggregator
from fedra.aggregators.he import HEWeightedAggregator
from fedra.aggregators.weighted import (
    WeightedAggregator,
    _acc_dtype,
    _cast,
    refuse_encrypted,
)
from fedra.core import (
    Array,
    FLModel,
    JsonCompatible,
    MetricValue,
    Params,
    ParamsType,
    WorkflowError,
)


class Aggregator(Protocol):
    """What a workflow needs from an aggregator: accept results, then produce one model."""

    @property
    def count(self) -> int:
        """Number of results accepted."""
        ...

    @property
    def total_weight(self) -> float:
        """Sum of the ``num_samples`` of the results that carried params."""
        ...

    def accept(self, model: FLModel) -> None:
        """Take one site's result into account."""
        ...

    def result(self) -> FLModel:
        """The aggregated model (the aggregator is spent)."""
        ...

    def metrics(self) -> dict[str, MetricValue]:
        """Weighted mean of each numeric metric."""
        ...


class _Collecting:
    """Keeps every result's params (checked for matching keys, shapes and type) for a rule
    that needs them all; metrics go through a WeightedAggregator."""

    def __init__(self, expected_type: ParamsType | None = None) -> None:
        self._metrics = WeightedAggregator()
        self._params_type = expected_type
        self._results: list[Params] = []
        self._total = 0.0
        #: Extra meta of the result, set by a rule while combining.
        self._extra_meta: Mapping[str, JsonCompatible] = {}

    @property
    def count(self) -> int:
        """Number of results accepted (with or without params)."""
        return self._metrics.count

    @property
    def total_weight(self) -> float:
        """Sum of the ``num_samples`` of the results that carried params."""
        return self._total

    def accept(self, model: FLModel) -> None:
        """Keep ``model``'s params (by reference: they are only read) and fold its metrics in."""
        refuse_encrypted(model, type(self).__name__)
        weight = model.num_samples
        self._metrics.accept(FLModel(metrics=model.metrics, meta=model.meta))
        if model.params is None:
            return
        if self._params_type is None:
            self._params_type = model.params_type
        elif model.params_type != self._params_type:
            raise WorkflowError(
                f"cannot aggregate params of type {model.params_type} with {self._params_type}"
            )
        if self._results:
            first = self._results[0]
            if model.params.keys() != first.keys():
                missing = sorted(first.keys() ^ model.params.keys())
                raise WorkflowError(f"result params differ from the others in keys {missing[:5]}")
            for name, array in model.params.items():
                if array.shape != first[name].shape:
                    raise WorkflowError(
                        f"param '{name}' has shape {array.shape}, expected {first[name].shape}"
                    )
        self._results.append(dict(model.params))
        self._total += weight

    def metrics(self) -> dict[str, MetricValue]:
        """Weighted mean of each numeric metric over the results that reported it."""
        return self._metrics.metrics()

    def result(self) -> FLModel:
        """The aggregate of the params kept; they are released (the aggregator is spent)."""
        results, self._results = self._results, []
        params = self._combine(results) if results else None
        meta: dict[str, JsonCompatible] = {"num_results": self.count, "total_weight": self._total}
        meta.update(self._extra_meta)
        return FLModel(
            params=params,
            params_type=self._params_type or ParamsType.FULL,
            metrics=self.metrics(),
            meta=meta,
        )

    def _combine(self, results: list[Params]) -> Params:
        """Combine the params of at least one result."""
        raise NotImplementedError

    @staticmethod
    def _coordinatewise(results: list[Params], rule: Callable[[Array], Array]) -> Params:
        """Apply ``rule`` to each param stacked along a new axis 0, cast back to its dtype."""
        combined: Params = {}
        for name, first in results[0].items():
            dtype = first.dtype
            stacked = np.stack([r[name] for r in results]).astype(_acc_dtype(dtype), copy=False)
            value = np.asarray(rule(stacked))
            combined[name] = value if value.dtype == dtype else _cast(value, dtype)
        return combined


class MedianAggregator(_Collecting):
    """Coordinate-wise median of the params (unweighted); keeps every result in memory."""

    def _combine(self, results: list[Params]) -> Params:
        return self._coordinatewise(results, lambda s: np.median(s, axis=0))


class TrimmedMeanAggregator(_Collecting):
    """Coordinate-wise trimmed mean: per coordinate, drop the ``floor(trim_ratio * n)``
    largest and smallest values and average the rest (unweighted); keeps every result.

    A round whose ``2 * floor(trim_ratio * n) >= n`` (possible only at ``trim_ratio = 0.5``
    with an even ``n``) leaves nothing to average: a WorkflowError.
    """

    def __init__(self, trim_ratio: float = 0.1, expected_type: ParamsType | None = None) -> None:
        if isinstance(trim_ratio, bool) or not 0 <= trim_ratio <= 0.5:
            raise ValueError(f"trim_ratio must be in [0, 0.5], got {trim_ratio!r}")
        super().__init__(expected_type)
        self.trim_ratio = float(trim_ratio)

    def _combine(self, results: list[Params]) -> Params:
        n = len(results)
        k = int(self.trim_ratio * n)
        if 2 * k >= n:
            raise WorkflowError(
                f"trimmed mean with trim_ratio={self.trim_ratio} drops {2 * k} of {n} results"
            )
        return self._coordinatewise(
            results, lambda s: np.mean(np.sort(s, axis=0)[k : n - k], axis=0)
        )


class KrumAggregator(_Collecting):
    """Krum and Multi-Krum (Blanchard et al., 2017), tolerating ``num_byzantine`` bad sites.

    Each update's score is the sum of its squared distances (over all params, flattened and
    concatenated) to its ``n - f - 2`` nearest other updates; the ``multi`` lowest-scoring
    updates are averaged (unweighted). ``multi=1`` is Krum, ``multi > 1`` Multi-Krum. Needs
    ``n > 2f + 2`` results and ``multi <= n - f``. Keeps every result in memory. The indices
    (in order of arrival) of the chosen results are in ``meta['krum_selected']``.
    """

    def __init__(
        self, num_byzantine: int, multi: int = 1, expected_type: ParamsType | None = None
    ) -> None:
        if isinstance(num_byzantine, bool) or not isinstance(num_byzantine, int):
            raise ValueError(f"num_byzantine must be an integer >= 0, got {num_byzantine!r}")
        if num_byzantine < 0:
            raise ValueError(f"num_byzantine must be an integer >= 0, got {num_byzantine!r}")
        if isinstance(multi, bool) or not isinstance(multi, int) or multi < 1:
            raise ValueError(f"multi must be an integer >= 1, got {multi!r}")
        super().__init__(expected_type)
        self.num_byzantine = num_byzantine
        self.multi = multi

    def _combine(self, results: list[Params]) -> Params:
        n, f = len(results), self.num_byzantine
        if n <= 2 * f + 2:
            raise WorkflowError(
                f"Krum with num_byzantine={f} needs more than {2 * f + 2} results, got {n}"
            )
        if self.multi > n - f:
            raise WorkflowError(
                f"Multi-Krum with multi={self.multi} needs at most n - f = "
                f"{n - f} (n={n}, num_byzantine={f})"
            )
        scores = krum_scores(results, f)
        selected = sorted(int(i) for i in np.argsort(scores, kind="stable")[: self.multi])
        self._extra_meta = {"krum_selected": selected}
        chosen = [results[i] for i in selected]
        return self._coordinatewise(chosen, lambda s: np.mean(s, axis=0))


def krum_scores(results: list[Params], num_byzantine: int) -> Array:
    """Krum score of each result: sum of squared distances to its ``n - f - 2`` nearest others.

    Distances are accumulated param by param in float64, so no flattened copy of a model is
    made.
    """
    n = len(results)
    distances = np.zeros((n, n), dtype=np.float64)
    for name in results[0]:
        for i in range(n):
            a = np.asarray(results[i][name], dtype=np.float64)
            for j in range(i + 1, n):
                diff = a - np.asarray(results[j][name], dtype=np.float64)
                d = float(np.vdot(diff, diff).real)
                distances[i, j] += d
                distances[j, i] += d
    nearest = n - num_byzantine - 2
    scores = np.empty(n, dtype=np.float64)
    for i in range(n):
        others = np.delete(distances[i], i)
        scores[i] = np.sort(others)[:nearest].sum()
    return scores


#: Aggregators by the name a job config gives them.
AGGREGATORS: dict[str, Callable[..., Aggregator]] = {
    "weighted": WeightedAggregator,
    "median": MedianAggregator,
    "trimmed_mean": TrimmedMeanAggregator,
    "krum": KrumAggregator,
    "dp_gaussian": DPGaussianAggregator,
    "he_weighted": HEWeightedAggregator,
}


def make_aggregator(name: str = "weighted", **args: Any) -> Aggregator:
    """A fresh aggregator looked up by ``name`` in :data:`AGGREGATORS`, built with ``args``."""
    factory = AGGREGATORS.get(name)
    if factory is None:
        raise ValueError(f"unknown aggregator {name!r}; choose one of {sorted(AGGREGATORS)}")
    return factory(**args)


def start_round(aggregator: Aggregator, sent: FLModel) -> None:
    """Tell an aggregator that needs it which model the sites received this round.

    Optional part of the protocol: an aggregator with a ``begin_round(sent)`` method (such as
    dp_gaussian, which turns full params into updates against that model) gets it; the others
    need nothing. Workflows call this right after :func:`make_aggregator`.
    """
    hook = getattr(aggregator, "begin_round", None)
    if callable(hook):
        hook(sent)


def use_keys(aggregator: Aggregator, startup_dir: Path | None) -> None:
    """Give an aggregator that reads key material the server's ``startup/`` folder.

    Optional part of the protocol: an aggregator with a ``load_keys(startup_dir)`` method
    (he_weighted: the public HE context) gets it, and raises a clear error when it is None;
    the others need nothing. Workflows call this right after :func:`make_aggregator`.
    """
    hook = getattr(aggregator, "load_keys", None)
    if callable(hook):
        hook(startup_dir)
