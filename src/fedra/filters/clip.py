"""ClipNorm: bound the L2 norm of an update (on a site, or on the server for each result)."""

from __future__ import annotations

import math

import numpy as np

from fedra.core import Array, FLModel, Params, ParamsType
from fedra.filters._util import float_names, refuse_quantized, replace_params
from fedra.filters.base import FilterContext, FilterError


class ClipNorm:
    """Scale an update down so that its global L2 norm is at most ``max_norm``.

    Protects: the aggregate from one oversized (diverged or malicious) update, and bounds each
    site's influence on a round (the sensitivity a DP mechanism needs). The norm is taken over
    all float params together, in float64; integer params pass through unchanged, and an update
    already within the bound is returned as it is (same values).

    An update (``params_type=DIFF``) is clipped directly. Full params are clipped as the
    difference to ``ctx.reference``, the model the site received, and returned as full params
    ``reference + clipped difference``: the server knows that model for every result (see
    :class:`~fedra.filters.FilteredFleet`); on a site ``ctx.reference`` is None, so there full
    params raise :class:`FilterError` (send a DIFF). Params that are absent from the reference
    also raise FilterError. A model without params (a validation result) passes unchanged.

    Parameters:
        max_norm: the largest L2 norm an update may have (finite, > 0).
    """

    def __init__(self, max_norm: float) -> None:
        if isinstance(max_norm, bool) or not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be finite and > 0, got {max_norm!r}")
        self.max_norm = float(max_norm)

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        """Return the model with its update clipped to ``max_norm``."""
        if model.params is None:
            return model
        refuse_quantized(model, type(self).__name__)
        params = model.params
        names = float_names(params)
        reference = None if model.params_type is ParamsType.DIFF else self._reference(params, ctx)
        norm = math.hypot(
            *(l2_norm(params[n], None if reference is None else reference[n]) for n in names)
        )
        if not math.isfinite(norm):
            raise FilterError(
                f"{self!r}: the update of site '{ctx.site}' has a non-finite norm "
                f"(NaN or Inf in it); put RejectNonFinite before ClipNorm"
            )
        if norm <= self.max_norm:
            return model
        scale = self.max_norm / norm
        clipped: Params = dict(params)
        for name in names:
            if reference is None:
                scaled = params[name].astype(np.float64) * scale
            else:
                base = reference[name].astype(np.float64)
                scaled = base + _difference(params[name], base) * scale
            clipped[name] = scaled.astype(params[name].dtype)
        return replace_params(model, clipped)

    def _reference(self, params: Params, ctx: FilterContext) -> Params:
        """The model the site received, checked against the float ``params`` it sent."""
        reference = ctx.reference
        if reference is None:
            raise FilterError(
                f"{self!r} got full params ({ParamsType.FULL}) without the model they update: "
                "on a site, send the difference to the model received (params_type=DIFF); "
                "on the server, start the job with an initial model (persistor)"
            )
        for name in float_names(params):
            base = reference.get(name)
            if base is None or base.shape != params[name].shape:
                raise FilterError(
                    f"{self!r}: param '{name}' from site '{ctx.site}' does not match the "
                    "model it received (missing there, or another shape)"
                )
        return reference

    def __repr__(self) -> str:
        return f"ClipNorm(max_norm={self.max_norm})"


#: Elements per step of the chunked norm: a float64 scratch of 512 KiB, no model-sized copy.
CHUNK = 1 << 16


def l2_norm(array: Array, base: Array | None = None) -> float:
    """The L2 norm of ``array`` (or of ``array - base``), accumulated in float64.

    Works through a small scratch buffer, so no copy of the array is made; huge finite values
    do not overflow (they take a slower, scaled path). NaN or Inf in, NaN or Inf out.
    """
    flat = array.reshape(-1)
    ref = None if base is None else base.reshape(-1)
    if ref is not None and ref.size != flat.size:
        raise ValueError(f"cannot subtract {ref.size} values from {flat.size}")
    if not flat.size:
        return 0.0
    scratch = np.empty(min(CHUNK, flat.size), dtype=np.float64)
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled below
        for start in range(0, flat.size, CHUNK):
            stop = min(start + CHUNK, flat.size)
            part = scratch[: stop - start]
            if ref is None:
                np.copyto(part, flat[start:stop], casting="unsafe")
            else:
                np.subtract(flat[start:stop], ref[start:stop], out=part, dtype=np.float64)
            np.multiply(part, part, out=part)  # not BLAS dot: its threads stall when busy
            total += float(part.sum())
        if math.isfinite(total):
            return math.sqrt(total)
        return _scaled_norm(flat.astype(np.float64) if ref is None else _difference(flat, ref))


def _difference(array: Array, base: Array) -> Array:
    return np.subtract(array, base, dtype=np.float64)


def _scaled_norm(flat: Array) -> float:
    """The norm of a float64 vector whose squares overflow: scaled by its largest value."""
    largest = float(np.max(np.abs(flat)))
    if not math.isfinite(largest):
        return largest
    scaled = flat / largest
    np.multiply(scaled, scaled, out=scaled)
    return largest * math.sqrt(float(scaled.sum()))
