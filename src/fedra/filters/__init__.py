"""Filters: privacy and hygiene transforms on task data and task results (pure: no I/O).

A site runs two chains on everything it exchanges: the job's own filters, wrapped by its
mandatory policy (see :func:`wrap_chains`). Config files name built-in filters via
:data:`FILTERS`.
"""

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
from fedra.filters.privacy import GaussianPrivacy, PercentilePrivacy, SVTPrivacy
from fedra.filters.variables import ExcludeVars, IncludeVars, RejectNonFinite

#: Built-in filters by the name a config file uses.
FILTERS: dict[str, type] = {
    "ExcludeVars": ExcludeVars,
    "GaussianPrivacy": GaussianPrivacy,
    "IncludeVars": IncludeVars,
    "PercentilePrivacy": PercentilePrivacy,
    "RejectNonFinite": RejectNonFinite,
    "SVTPrivacy": SVTPrivacy,
}

__all__ = [
    "FILTERS",
    "TASK_DATA",
    "TASK_RESULT",
    "Direction",
    "ExcludeVars",
    "Filter",
    "FilterChain",
    "FilterContext",
    "FilterError",
    "GaussianPrivacy",
    "IncludeVars",
    "PercentilePrivacy",
    "RejectNonFinite",
    "SVTPrivacy",
    "wrap_chains",
]
