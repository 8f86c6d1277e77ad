"""A multi-host network test bed: hosts as network namespaces, links through a user-space
switch that emulates rate, delay, jitter, loss, queue limits and outages (issue 16).

See docs/testing-networks.md. ``python -m bench.netbed --help`` is the command line.
"""

from bench.netbed.bed import BedUnavailable, NetBed, close_all, running_beds, stale_beds
from bench.netbed.control import ControlError, HostStats, QueueStats
from bench.netbed.link import PROFILES, Direction, Link, Profile
from bench.netbed.system import sweep, unavailable

__all__ = [
    "PROFILES",
    "BedUnavailable",
    "ControlError",
    "Direction",
    "HostStats",
    "Link",
    "NetBed",
    "Profile",
    "QueueStats",
    "close_all",
    "running_beds",
    "stale_beds",
    "sweep",
    "unavailable",
]
