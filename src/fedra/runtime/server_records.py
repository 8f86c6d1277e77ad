"""What the server parent keeps about each connected site and each running job (its
process; where the job is in its life is the router's, :mod:`fedra.runtime.routing`)."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from fedra.scheduler import ResourceError, SiteResources
from fedra.transport import Connection, LocalChannel

log = logging.getLogger("fedra.server")


@dataclass
class SiteHandle:
    """A connected site."""

    name: str
    org: str
    conn: Connection
    connected_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    jobs: list[str] = field(default_factory=list)
    #: What the site declared (``local/resources.json``) and, as last reported, has free.
    total: SiteResources | None = None
    free: SiteResources | None = None

    def update_resources(self, report: object) -> None:
        """Take a site's resource report (from hello, heartbeat or a reserve answer)."""
        if not isinstance(report, dict):
            return
        try:
            total = SiteResources.from_dict(report.get("total"), f"{self.name} total")
            free = SiteResources.from_dict(report.get("free"), f"{self.name} free")
        except ResourceError as exc:
            log.warning("site %s sent a bad resource report: %s", self.name, exc)
            return
        self.total, self.free = total, free


@dataclass
class RunningJob:
    """A job whose server job process is alive."""

    job_id: str
    proc: subprocess.Popen[bytes]
    channel: LocalChannel
    sites: list[str]
    log_path: Path
