"""A model update as one flat vector, in the order both ends agree on (sorted param names).

Secure aggregation sums one integer vector per site; these helpers turn a site's result
into the float vector of its update against the global model it received, and the
aggregated vector back into named arrays shaped like the global model.
"""

from __future__ import annotations

import numpy as np

from fedra.core import Array, FLModel, Params, ParamsType
from fedra.secagg.errors import SecAggError


def vector_length(params: Params) -> int:
    """The number of values secure aggregation sums for a model with ``params``."""
    check_layout(params)
    return sum(int(a.size) for a in params.values())


def check_layout(params: Params) -> None:
    """Refuse params secure aggregation cannot sum (empty, or neither integer nor float)."""
    if not params:
        raise SecAggError("secure aggregation needs a global model with at least one param")
    for name, array in params.items():
        if array.dtype.kind not in "iuf":
            raise SecAggError(
                f"param '{name}' has dtype {array.dtype}: secure aggregation sums integer and "
                "float params only"
            )


def update_vector(result: FLModel, global_params: Params) -> Array:
    """The float64 update of ``result`` against ``global_params``, flattened by sorted name.

    A full model is turned into its difference to the global model; a diff is taken as is.
    Its params must have exactly the global model's names and shapes.
    """
    params = result.params or {}
    missing = sorted(set(global_params) - set(params))
    extra = sorted(set(params) - set(global_params))
    if missing or extra:
        raise SecAggError(
            f"the training result must have the global model's params: missing {missing}, "
            f"unexpected {extra}"
        )
    pieces = []
    for name in sorted(global_params):
        value = np.asarray(params[name], dtype=np.float64)
        base = global_params[name]
        if value.shape != base.shape:
            raise SecAggError(
                f"param '{name}' has shape {value.shape}, the global model's is {base.shape}"
            )
        if result.params_type is ParamsType.FULL:
            value = value - base.astype(np.float64)
        pieces.append(value.ravel())
    return np.concatenate(pieces) if pieces else np.zeros(0)


def split_vector(vector: Array, global_params: Params) -> Params:
    """Named float64 arrays shaped like ``global_params`` (integer params rounded)."""
    out: Params = {}
    start = 0
    for name in sorted(global_params):
        base = global_params[name]
        piece = np.asarray(vector[start : start + base.size], dtype=np.float64).reshape(base.shape)
        out[name] = np.rint(piece) if base.dtype.kind in "iu" else piece
        start += base.size
    if start != len(vector):
        raise SecAggError(f"vector of {len(vector)} values for a model of {start}")
    return out
