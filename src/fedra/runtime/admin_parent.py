"""The server parent as an :class:`~fedra.runtime.admin_host.AdminHost`.

A thin adapter: each member reads or calls the one thing of :class:`ServerParent` it names,
so the admin handlers never see the rest of the server. (When the server parent provides
these members itself, this adapter can go.)
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from fedra.core import JobStatus
from fedra.core.jsonfile import JsonObject, JsonValue
from fedra.protocol import Request, encode
from fedra.runtime.admin_host import SiteView

if TYPE_CHECKING:
    from fedra.jobstore import JobStore
    from fedra.runtime.server_parent import ServerParent
    from fedra.runtime.server_records import SiteHandle


def _view(handle: SiteHandle) -> SiteView:
    return SiteView(
        handle.name, handle.org, handle.last_seen, tuple(handle.jobs), handle.total, handle.free
    )


class ParentAdminHost:
    """What the admin handlers need of a :class:`ServerParent`, and nothing more."""

    def __init__(self, server: ServerParent) -> None:
        self._server = server

    @property
    def name(self) -> str:
        """The server's participant name."""
        return self._server.kit.name

    @property
    def org(self) -> str:
        """The server's org."""
        return self._server.kit.org

    @property
    def project(self) -> str:
        """The project's name."""
        return self._server.kit.project

    @property
    def ha(self) -> bool:
        """Whether the project has an overseer."""
        return self._server.kit.overseer is not None

    @property
    def ssid(self) -> int | None:
        """The service session served under, if any."""
        return self._server.ssid

    @property
    def root(self) -> Path:
        """The server's kit folder."""
        return self._server.kit.root

    @property
    def max_job_bytes(self) -> int:
        """The largest job archive accepted."""
        return self._server.kit.max_job_bytes

    @property
    def project_sites(self) -> Collection[str] | None:
        """The sites of the project, or None."""
        return self._server.kit.sites

    @property
    def ca_pem(self) -> bytes:
        """The project's root CA."""
        return self._server.ca_pem

    @property
    def store(self) -> JobStore:
        """The job store."""
        return self._server.store

    @property
    def started(self) -> float:
        """When the server started."""
        return self._server.started

    def ports(self) -> tuple[int, int]:
        """(federated-learning port, admin port)."""
        return self._server.fed_port, self._server.admin_port

    def refusal(self) -> str | None:
        """None when hot; else why this server refuses admin commands."""
        return None if self._server.hot else self._server.not_in_service()

    def running_jobs(self) -> list[str]:
        """The ids of the running jobs."""
        return list(self._server.running)

    def waiting_reason(self, job_id: str) -> str | None:
        """Why a submitted job waits, or None."""
        return self._server.waiting.get(job_id)

    def site(self, name: str) -> SiteView | None:
        """A connected site, or None."""
        handle = self._server.sites.get(name)
        return _view(handle) if handle is not None else None

    def sites(self) -> list[SiteView]:
        """Every connected site, sorted by name."""
        return [_view(h) for h in sorted(self._server.sites.values(), key=lambda h: h.name)]

    def wake(self) -> None:
        """Run the scheduler now."""
        self._server.wake()

    def abort(self, job_id: str, reason: str) -> JobStatus:
        """Abort a job; its status after."""
        return self._server.abort(job_id, reason)

    def ask_site(self, site: str, cmd: str, args: JsonObject) -> JsonValue:
        """Ask a connected site; its answer's data."""
        answer: JsonValue = self._server.ask(site, cmd, args)
        return answer

    def tell_site(self, site: str, cmd: str) -> None:
        """Send a one-way request to a connected site."""
        self._server.send_to_site(site, encode(Request(cmd=cmd)))

    def drop_site(self, name: str) -> bool:
        """Close a site's connection; False when not connected."""
        handle = self._server.sites.get(name)
        if handle is None:
            return False
        handle.conn.close()
        return True

    def stop(self, exit_code: int) -> None:
        """Stop the server."""
        self._server.shutdown(exit_code)
