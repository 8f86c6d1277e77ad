"""Streaming weighted averaging: each result is folded in as it arrives, then dropped.

Memory is one accumulator the size of the model (plus a small scratch chunk), whatever the
number of sites; incoming arrays are only read, never modified or kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedra.core import Array, FLModel, MetricValue, Params, ParamsType, WorkflowError
from fedra.core.filemap import backing, release_pages
from fedra.he import is_encrypted

#: Elements processed per step when folding an array in; bounds temporaries to ~8 MB.
CHUNK = 1 << 20


def refuse_encrypted(model: FLModel, aggregator: str) -> None:
    """A WorkflowError when ``model`` holds HE ciphertexts or quantized codes: averaging those
    bytes as numbers is noise."""
    if model.meta.get("quantized"):
        raise WorkflowError(
            f"the {aggregator} aggregator got a quantized result (meta['quantized']); add "
            "Dequantize to the server's result_filters"
        )
    if is_encrypted(model.params):
        raise WorkflowError(
            f"the {aggregator} aggregator got an HE-encrypted result; encrypted models are "
            "averaged by aggregator 'he_weighted' only"
        )


def _acc_dtype(dtype: np.dtype[np.generic]) -> np.dtype[np.generic]:
    """Accumulate floats in their own precision (at least float32), everything else in float64."""
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
        return np.result_type(dtype, np.float32)
    return np.dtype(np.float64)


def _fold(acc: Array, incoming: Array, weight: float, scratch: Array | None) -> None:
    """``acc += weight * incoming`` (``acc = weight * incoming`` without ``scratch``), CHUNK
    elements at a time through a reused scratch buffer (no model-sized temporary, and no
    allocation at all per chunk). An incoming array that lies in a read-only file map (a
    result received to disk) has its pages let go as they are folded in, so that it never
    becomes resident as a whole."""
    flat_acc = acc.reshape(-1)
    flat_in = incoming.reshape(-1)
    on_disk = backing(flat_in) is not None
    for start in range(0, flat_acc.size, CHUNK):
        stop = min(start + CHUNK, flat_acc.size)
        if scratch is None:
            np.multiply(flat_in[start:stop], weight, out=flat_acc[start:stop], casting="unsafe")
        else:
            part = scratch[: stop - start]
            np.multiply(flat_in[start:stop], weight, out=part, casting="unsafe")
            flat_acc[start:stop] += part
        if on_disk:
            release_pages(flat_in[start:stop])


class WeightedAggregator:
    """Weighted mean of params and of numeric metrics over the results of one round."""

    def __init__(self, expected_type: ParamsType | None = None) -> None:
        self._acc: Params | None = None
        self._dtypes: dict[str, np.dtype[np.generic]] = {}
        self._params_type = expected_type
        self._total = 0.0
        self._metric_sums: dict[str, float] = {}
        self._metric_weights: dict[str, float] = {}
        self._scratch: dict[np.dtype[np.generic], Array] = {}
        self.count = 0

    def _scratch_for(self, acc: Array) -> Array:
        scratch = self._scratch.get(acc.dtype)
        if scratch is None:
            scratch = np.empty(min(CHUNK, max(acc.size, 1)), dtype=acc.dtype)
            self._scratch[acc.dtype] = scratch
        elif scratch.size < min(CHUNK, acc.size):
            scratch = np.empty(min(CHUNK, acc.size), dtype=acc.dtype)
            self._scratch[acc.dtype] = scratch
        return scratch

    @property
    def total_weight(self) -> float:
        """Sum of the weights accepted so far."""
        return self._total

    def accept(self, model: FLModel) -> None:
        """Fold ``model`` in, weighted by ``model.num_samples``; its arrays are only read."""
        refuse_encrypted(model, "weighted")
        weight = model.num_samples
        self._accept_metrics(model.metrics, weight)
        self.count += 1
        if model.params is None:
            return
        if self._params_type is None:
            self._params_type = model.params_type
        elif model.params_type != self._params_type:
            raise WorkflowError(
                f"cannot average params of type {model.params_type} with {self._params_type}"
            )
        self._total += weight
        if self._acc is None:
            self._acc = {}
            for name, array in model.params.items():
                self._dtypes[name] = array.dtype
                acc = np.empty(array.shape, dtype=_acc_dtype(array.dtype))
                _fold(acc, array, weight, None)
                self._acc[name] = acc
            return
        if model.params.keys() != self._acc.keys():
            missing = sorted(self._acc.keys() ^ model.params.keys())
            raise WorkflowError(f"result params differ from the others in keys {missing[:5]}")
        for name, array in model.params.items():
            acc = self._acc[name]
            if array.shape != acc.shape:
                raise WorkflowError(f"param '{name}' has shape {array.shape}, expected {acc.shape}")
            _fold(acc, array, weight, self._scratch_for(acc))

    def _accept_metrics(self, metrics: Mapping[str, MetricValue], weight: float) -> None:
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            self._metric_sums[key] = self._metric_sums.get(key, 0.0) + float(value) * weight
            self._metric_weights[key] = self._metric_weights.get(key, 0.0) + weight

    def metrics(self) -> dict[str, MetricValue]:
        """Weighted mean of each numeric metric over the results that reported it."""
        return {k: self._metric_sums[k] / w for k, w in self._metric_weights.items() if w > 0}

    def result(self) -> FLModel:
        """The weighted mean; the accumulator is handed over (the aggregator is spent)."""
        params: Params | None = None
        if self._acc is not None:
            if self._total <= 0:
                raise WorkflowError("every result had num_samples = 0: nothing to average")
            params = {}
            for name, summed in self._acc.items():
                np.divide(summed, self._total, out=summed)
                dtype = self._dtypes[name]
                params[name] = summed if summed.dtype == dtype else _cast(summed, dtype)
            self._acc = None
        return FLModel(
            params=params,
            params_type=self._params_type or ParamsType.FULL,
            metrics=self.metrics(),
            meta={"num_results": self.count, "total_weight": self._total},
        )


def _cast(acc: Array, dtype: np.dtype[np.generic]) -> Array:
    if np.issubdtype(dtype, np.integer):
        return np.rint(acc).astype(dtype)
    return acc.astype(dtype)


def apply_update(global_params: Params, update: FLModel) -> Params:
    """The new global params: ``update`` itself when full, ``global + update`` when a diff."""
    if update.params is None:
        return global_params
    if update.params_type == ParamsType.FULL:
        return update.params
    merged: Params = {}
    for name, base in global_params.items():
        delta = update.params.get(name)
        merged[name] = base if delta is None else (base + delta).astype(base.dtype, copy=False)
    return merged
