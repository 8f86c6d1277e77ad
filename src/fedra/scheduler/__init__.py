"""Multi-job scheduling: site resources, the site resource manager and the pure scheduling policy.

Pure layer: imports only ``fedra.core`` and the standard library; no sockets, threads or files.
"""

from fedra.scheduler.policy import (
    DEFAULT_AGING_S,
    Decision,
    Dispatch,
    QueuedJob,
    Wait,
    schedule,
)
from fedra.scheduler.resources import (
    STANDARD_KEYS,
    Allocation,
    Reservation,
    ResourceError,
    ResourceManager,
    SiteResources,
    demand,
    shortfall,
)

__all__ = [
    "DEFAULT_AGING_S",
    "STANDARD_KEYS",
    "Allocation",
    "Decision",
    "Dispatch",
    "QueuedJob",
    "Reservation",
    "ResourceError",
    "ResourceManager",
    "SiteResources",
    "Wait",
    "demand",
    "schedule",
    "shortfall",
]
