"""A site's resources, read from ``local/resources.json``, and the site's resource manager.

Example ``local/resources.json``::

    {"num_gpus": 2, "mem_per_gpu": 16, "num_cpus": 8, "memory": 64, "extra": {"fpga": 1}}

Without the file a site declares its CPU count and physical memory (GiB) and no GPUs; a file
without ``num_cpus`` or ``memory`` gets those detected values too. The
manager's state lives in the site parent's memory: a site that restarts has every resource
free again, which is right because its job processes ended with it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedra.core import ConfigError
from fedra.scheduler import Allocation, ResourceError, ResourceManager, SiteResources

RESOURCES_FILE = "resources.json"
#: Seconds a reservation made for the scheduler stays valid without a start_job.
RESERVATION_TTL_S = 60.0


def detected_resources() -> SiteResources:
    """What this machine has: its CPUs and physical memory; no GPUs are assumed."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = 0.0
    return SiteResources(num_cpus=os.cpu_count() or 1, memory=round(memory, 1))


def load_site_resources(root: Path) -> SiteResources:
    """The site's declared resources from ``root/local/resources.json`` (or the detected ones)."""
    path = root / "local" / RESOURCES_FILE
    if not path.exists():
        return detected_resources()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if isinstance(data, dict):
        detected = detected_resources()
        data.setdefault("num_cpus", detected.num_cpus)
        data.setdefault("memory", detected.memory)
    try:
        return SiteResources.from_dict(data, str(path))
    except ResourceError as exc:
        raise ConfigError(str(exc)) from exc


class SiteResourceBook:
    """A thread-safe :class:`ResourceManager` for the site parent (wall-clock expiry)."""

    def __init__(self, site: str, total: SiteResources) -> None:
        self._lock = threading.Lock()
        self._manager = ResourceManager(site, total, time.monotonic)

    @property
    def total(self) -> SiteResources:
        """What the site declared."""
        return self._manager.total

    def report(self) -> dict[str, Any]:
        """Totals and what is free now, for heartbeats."""
        with self._lock:
            self._manager.expire()
            return {
                "total": self._manager.total.as_dict(),
                "free": self._manager.free_resources().as_dict(),
            }

    def reserve(self, job_id: str, spec: Mapping[str, Any], ttl_s: float) -> None:
        """Hold ``spec`` for the job; ResourceError with the reason when it does not fit."""
        with self._lock:
            self._manager.expire()
            self._manager.reserve(job_id, spec, ttl_s)

    def allocate(self, job_id: str, spec: Mapping[str, Any]) -> Allocation:
        """Give the job its resources: its reservation, or a fresh one if it has none.

        A job resumed after a server or site restart has no reservation any more; it gets
        what it asks for if that is free, else ResourceError.
        """
        with self._lock:
            self._manager.expire()
            current = self._manager.allocations.get(job_id)
            if current is not None:
                return current
            if job_id not in self._manager.reservations:
                self._manager.reserve(job_id, spec, RESERVATION_TTL_S)
            return self._manager.allocate(job_id)

    def free(self, job_id: str) -> None:
        """Release whatever the job holds."""
        with self._lock:
            self._manager.free(job_id)

    def holders(self) -> list[str]:
        """Jobs holding a reservation or an allocation."""
        with self._lock:
            return sorted({*self._manager.reservations, *self._manager.allocations})
