"""Filters: privacy and hygiene transforms on task data and task results (pure: no I/O).

A site runs two chains on everything it exchanges: the job's own filters, wrapped by its
mandatory policy (see :func:`wrap_chains`). The server may run a third chain on every incoming
result (:class:`FilteredFleet`, the server config's ``result_filters``). Config files name
built-in filters via :data:`FILTERS`. :mod:`fedra.filters.accounting` tracks the privacy budget
(ε, δ) of Gaussian noise over rounds. :class:`Quantize` and :class:`Dequantize` send float
params in 16 or 8 bits.
"""

from fedra.filters.accounting import (
    DEFAULT_ORDERS,
    INTEGER_ORDERS,
    RdpAccountant,
    gaussian_epsilon,
    gaussian_rdp,
    rdp_to_epsilon,
)
from fedra.filters.base import (
    TASK_DATA,
    TASK_RESULT,
    Direction,
    Filter,
    FilterChain,
    FilterContext,
    FilterError,
    wrap_chains,
)
from fedra.filters.clip import ClipNorm, l2_norm
from fedra.filters.fleet import FilteredFleet, Rejection
from fedra.filters.he import HEDecrypt, HEEncrypt
from fedra.filters.privacy import GaussianPrivacy, PercentilePrivacy, SVTPrivacy
from fedra.filters.quantize import QUANTIZED_KEY, Dequantize, Quantize
from fedra.filters.variables import ExcludeVars, IncludeVars, RejectNonFinite

#: Built-in filters by the name a config file uses.
FILTERS: dict[str, type] = {
    "ClipNorm": ClipNorm,
    "Dequantize": Dequantize,
    "ExcludeVars": ExcludeVars,
    "GaussianPrivacy": GaussianPrivacy,
    "HEDecrypt": HEDecrypt,
    "HEEncrypt": HEEncrypt,
    "IncludeVars": IncludeVars,
    "PercentilePrivacy": PercentilePrivacy,
    "Quantize": Quantize,
    "RejectNonFinite": RejectNonFinite,
    "SVTPrivacy": SVTPrivacy,
}

__all__ = [
    "DEFAULT_ORDERS",
    "FILTERS",
    "INTEGER_ORDERS",
    "QUANTIZED_KEY",
    "TASK_DATA",
    "TASK_RESULT",
    "ClipNorm",
    "Dequantize",
    "Direction",
    "ExcludeVars",
    "Filter",
    "FilterChain",
    "FilterContext",
    "FilterError",
    "FilteredFleet",
    "GaussianPrivacy",
    "HEDecrypt",
    "HEEncrypt",
    "IncludeVars",
    "PercentilePrivacy",
    "Quantize",
    "RdpAccountant",
    "RejectNonFinite",
    "Rejection",
    "SVTPrivacy",
    "gaussian_epsilon",
    "gaussian_rdp",
    "l2_norm",
    "rdp_to_epsilon",
    "wrap_chains",
]
