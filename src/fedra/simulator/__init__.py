"""The simulator: a whole federation in one process, same job folder and code as production."""

from fedra.simulator.progress import ProgressDisplay, format_metrics
from fedra.simulator.ray_backend import RayOptions
from fedra.simulator.runner import RunSummary, simulate, site_names
from fedra.simulator.sites import BACKENDS

__all__ = [
    "BACKENDS",
    "ProgressDisplay",
    "RayOptions",
    "RunSummary",
    "format_metrics",
    "simulate",
    "site_names",
]
