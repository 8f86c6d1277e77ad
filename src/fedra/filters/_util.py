"""Helpers shared by the filters: copying models and flattening float params."""

from __future__ import annotations

import dataclasses

import numpy as np

from fedra.core import Array, FLModel, Params, ParamsType
from fedra.filters.base import FilterError


def replace_params(model: FLModel, params: Params | None) -> FLModel:
    """A copy of ``model`` with new params; metrics and meta are copied shallowly."""
    return dataclasses.replace(
        model, params=params, metrics=dict(model.metrics), meta=dict(model.meta)
    )


def float_names(params: Params) -> list[str]:
    """Names of the floating-point params, sorted (the order flattening uses)."""
    return sorted(n for n, a in params.items() if np.issubdtype(a.dtype, np.floating))


def refuse_quantized(model: FLModel, filter_name: str) -> None:
    """A FilterError when ``model`` holds quantized codes: noise or clipping would be void."""
    if model.meta.get("quantized"):
        raise FilterError(
            f"{filter_name}: the model is quantized (meta['quantized']); run {filter_name} "
            "before Quantize on a site, or after Dequantize on the server"
        )


def require_diff(model: FLModel, filter_name: str) -> Params:
    """The params of a DIFF model, or a FilterError explaining what to send."""
    refuse_quantized(model, filter_name)
    if model.params_type is not ParamsType.DIFF:
        raise FilterError(
            f"{filter_name} needs a model update (params_type=DIFF), got {model.params_type}; "
            "have the site send the difference to the model it received"
        )
    return model.params or {}


def flatten(params: Params, names: list[str]) -> Array:
    """The named params as one float64 vector (a copy)."""
    if not names:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([params[n].astype(np.float64, copy=False).ravel() for n in names])


def unflatten(vector: Array, params: Params, names: list[str]) -> Params:
    """New params: the named ones taken from ``vector`` (original dtype), the rest as-is."""
    out = dict(params)
    start = 0
    for name in names:
        original = params[name]
        stop = start + original.size
        out[name] = vector[start:stop].reshape(original.shape).astype(original.dtype)
        start = stop
    return out
