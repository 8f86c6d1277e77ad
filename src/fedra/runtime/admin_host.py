"""What the admin handlers see of the server: a small read/act interface, not the server.

:class:`AdminHost` lists exactly what the handlers of :mod:`fedra.runtime.admin_jobs` and
:mod:`fedra.runtime.admin_system` use: the server's identity and kit folder, the job store,
a read-only view of the connected sites, and the few acts an admin may ask for (wake the
scheduler, abort a job, ask or tell a site, drop a site, stop the server). The server parent
provides it (:mod:`fedra.runtime.admin_parent`); the unit tests provide an in-memory one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

import msgspec

from fedra.core import JobStatus
from fedra.core.admin_spec import Args
from fedra.core.jsonfile import JsonObject, JsonValue
from fedra.runtime.admin_rights import Access

if TYPE_CHECKING:
    from fedra.jobstore import JobStore
    from fedra.scheduler import SiteResources


@dataclass(frozen=True)
class SiteView:
    """A connected site, as admin commands see it."""

    name: str
    org: str
    #: ``time.monotonic()`` of the site's last message.
    last_seen: float
    jobs: tuple[str, ...]
    #: What the site declared, and what it last reported free.
    total: SiteResources | None = None
    free: SiteResources | None = None


class AdminHost(Protocol):
    """Everything the admin handlers read from, and ask of, the server."""

    @property
    def name(self) -> str:
        """The server's participant name."""

    @property
    def org(self) -> str:
        """The server's org (for the ``own_org`` scope of the server itself)."""

    @property
    def project(self) -> str:
        """The project's name ('' when the kit does not say)."""

    @property
    def ha(self) -> bool:
        """Whether the project has an overseer (high availability)."""

    @property
    def ssid(self) -> int | None:
        """The service session this server serves under (high availability), else None."""

    @property
    def root(self) -> Path:
        """The server's kit folder (its ``log.txt``, its ``local/authorization.json``)."""

    @property
    def max_job_bytes(self) -> int:
        """The largest job archive accepted."""

    @property
    def project_sites(self) -> Collection[str] | None:
        """The sites of the project; None when any site with a project certificate may join."""

    @property
    def ca_pem(self) -> bytes:
        """The project's root CA (job signatures are checked against it)."""

    @property
    def store(self) -> JobStore:
        """The job store (fenced by the service session when highly available)."""

    @property
    def started(self) -> float:
        """When the server started (Unix time)."""

    def ports(self) -> tuple[int, int]:
        """(federated-learning port, admin port)."""

    def refusal(self) -> str | None:
        """None when this server is in service (hot); else why it refuses admin commands."""

    def running_jobs(self) -> list[str]:
        """The ids of the jobs running now."""

    def waiting_reason(self, job_id: str) -> str | None:
        """Why a submitted job waits (resources, sites), or None."""

    def site(self, name: str) -> SiteView | None:
        """A connected site; None when no site of that name is connected."""

    def sites(self) -> list[SiteView]:
        """Every connected site, sorted by name."""

    def wake(self) -> None:
        """Run the scheduler now (a job was submitted)."""

    def abort(self, job_id: str, reason: str) -> JobStatus:
        """Abort a job (recorded first, then stopped); its status after."""

    def ask_site(self, site: str, cmd: str, args: JsonObject) -> JsonValue:
        """Send a request to a connected site and wait for its answer's data."""

    def tell_site(self, site: str, cmd: str) -> None:
        """Send a one-way request (``shutdown``, ``restart``) to a connected site."""

    def drop_site(self, name: str) -> bool:
        """Close a site's connection; False when it is not connected."""

    def stop(self, exit_code: int) -> None:
        """Stop the server with ``exit_code``."""


@dataclass(frozen=True)
class AdminRequest:
    """One authorized request, as a handler gets it: exactly the validated arguments."""

    args: Args
    #: The zip that came with the request (``submit_job``), else None.
    blob: bytes | None
    access: Access


#: A handler's answer: the declared result, and a zip to send with it (``download_job``).
HandlerResult: TypeAlias = tuple[msgspec.Struct, bytes | None]
Handler: TypeAlias = Callable[[AdminHost, AdminRequest], HandlerResult]
