"""What the server parent keeps about each connected site and each running job (its
process; where the job is in its life is the router's, :mod:`fedra.runtime.routing`)."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fedra.core import JsonObject, JsonValue
from fedra.protocol import Round, StartJob
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
    #: The last report taken: the same one again (most heartbeats) changes nothing.
    _report: object = field(default=None, repr=False)

    def update_resources(self, report: object) -> None:
        """Take a site's resource report (from hello, heartbeat or a reserve answer); one
        equal to the last report taken is not parsed again."""
        if not isinstance(report, dict) or report == self._report:
            return
        try:
            total = SiteResources.from_dict(report.get("total"), f"{self.name} total")
            free = SiteResources.from_dict(report.get("free"), f"{self.name} free")
        except ResourceError as exc:
            log.warning("site %s sent a bad resource report: %s", self.name, exc)
            return
        self.total, self.free = total, free
        self._report = report


@dataclass
class RunningJob:
    """A job whose server job process is alive."""

    job_id: str
    proc: subprocess.Popen[bytes]
    channel: LocalChannel
    sites: list[str]
    log_path: Path
    #: The rounds its workflows finished (for show_stats), as stored in
    #: ``run_info["rounds"]``: those of the runs before a resume included.
    rounds: list[JsonObject] = field(default_factory=list)
    #: Its start_job and zip, read from the store once for all its sites.
    start: tuple[StartJob, bytes] | None = None

    def record_round(self, message: Round) -> list[JsonObject]:
        """Add a finished round to the history; the history to store.

        A round with a place (``message.index``) takes it and drops the records after it:
        after a resume the job's process runs again the rounds its last snapshot did not
        cover, and their new records replace the earlier ones, so each round is listed
        once. A place past the end (records this process never got) appends.
        """
        entry: JsonObject = {
            "workflow": message.workflow,
            "round": message.round,
            "metrics": dict(message.metrics),
            "seconds": message.seconds,
            "sites": list(message.sites),
        }
        index = message.index
        if index is not None and index < len(self.rounds):
            del self.rounds[index:]
        self.rounds.append(entry)
        return list(self.rounds)


def stored_rounds(run_info: Mapping[str, JsonValue]) -> list[JsonObject]:
    """The round records a job's ``run_info`` holds (what a resumed job adds to)."""
    rounds = run_info.get("rounds")
    if not isinstance(rounds, list):
        return []
    return [r for r in rounds if isinstance(r, dict)]
