"""The simulator: a whole federation in one process, same job folder and code as production."""

from fedra.simulator.progress import ProgressDisplay, format_metrics
from fedra.simulator.runner import RunSummary, simulate, site_names

__all__ = ["ProgressDisplay", "RunSummary", "format_metrics", "simulate", "site_names"]
