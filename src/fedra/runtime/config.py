"""The startup configuration of a server or a site, read from its kit's ``startup/`` folder.

The files' schemas are :class:`fedra.core.kitfile.ServerFile` and ``SiteFile``; every error
names the file and the key (``fed_server.json: max_jobs: expected an integer >= 1, got 0``).

Layout of a kit (written by ``fedra poc prepare``, later by provisioning)::

    <participant>/startup/fed_server.json | fed_client.json   connection settings
    <participant>/startup/rootCA.pem, server.crt|client.crt, server.key|client.key
    <participant>/startup/start.sh, sub_start.sh, stop_fl.sh
    <participant>/local/                                       editable local settings
    <participant>/log.txt                                      written by the process
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from fedra.core.jsonfile import read_json_as
from fedra.core.kitfile import (
    DEFAULT_WINDOW,
    NETWORK_FILE,
    NetworkEntry,
    NetworkFile,
    OverseerEntry,
    ServerFile,
    SiteFile,
)
from fedra.core.safezip import MAX_JOB_ARCHIVE_BYTES
from fedra.runtime.peers import Roster

if TYPE_CHECKING:  # the job store is the server's only: a site does not import it
    from fedra.jobstore import StoreConfig

SERVER_FILE = "fed_server.json"
CLIENT_FILE = "fed_client.json"
#: Site connections a server serves at once when its kit lists no sites (a POC kit), and the
#: room it keeps above the sites it lists (a site reconnecting while its old connection is
#: still open, a refused certificate being told why).
CONNECTION_ROOM = 64


def _roster(file: ServerFile | SiteFile, path: Path) -> Roster:
    return Roster.from_config(msgspec.to_builtins(file), path)


def _job_store(file: ServerFile, root: Path, path: Path) -> StoreConfig | None:
    if file.job_store is None:
        return None
    entry = msgspec.to_builtins(file.job_store)
    from fedra.jobstore import StoreConfig

    return StoreConfig.parse(entry, root / "store", f"{path}: job_store")


def network_settings(root: Path, provisioned: NetworkEntry | None) -> NetworkEntry | None:
    """The flow-control settings of the kit at ``root``: ``local/network.json`` when it
    exists (it replaces the provisioned ones), else ``provisioned``."""
    path = root / "local" / NETWORK_FILE
    if not path.is_file():
        return provisioned
    local = read_json_as(path, NetworkFile)
    return NetworkEntry(local.receive_window, local.path_mbit, local.path_rtt_ms)


def _server_window(root: Path, file: ServerFile) -> int:
    settings = network_settings(root, file.network)
    window = settings.window() if settings is not None else None
    return window or file.receive_window or DEFAULT_WINDOW


def _site_window(root: Path, file: SiteFile) -> int | None:
    settings = network_settings(root, file.network)
    return settings.window() if settings is not None else None


@dataclass(frozen=True)
class ServerKit:
    """Settings of a server parent."""

    root: Path
    name: str
    org: str
    host: str
    fed_port: int
    admin_port: int
    max_jobs: int
    heartbeat_timeout: float
    #: The sites of the project; None: any site with a certificate from the project's CA.
    sites: tuple[str, ...] | None = None
    #: Seconds after which a queued job moves to the front and claims its resources.
    job_aging_s: float = 300.0
    #: The project's overseer (``url`` …), for high availability; None: this server is hot.
    overseer: OverseerEntry | None = None
    #: The job store (``fedra.jobstore.open_store``): shared by all servers with an overseer.
    job_store: StoreConfig | None = None
    #: Bytes of one site's upload in flight before the site waits for the server to read
    #: (``network`` in the kit or ``local/network.json``; see docs/networks.md). None: the
    #: transport's default (256 KiB; a server parent always has a kit's value).
    receive_window: int | None = None
    #: The largest job archive (zip) an admin may upload, in bytes: a bigger upload is refused
    #: from its declared size, before its body is received.
    max_job_bytes: int = MAX_JOB_ARCHIVE_BYTES
    #: The project's admins and revoked participants (empty lists: the kit has none).
    roster: Roster = field(default_factory=Roster)
    #: The project's name ('' when the kit does not say).
    project: str = ""
    #: Site connections served at once, as ``fed_server.json`` says (None: derived, see
    #: :attr:`max_connections`).
    connections: int | None = None

    @property
    def max_connections(self) -> int:
        """Site connections the FL port serves at once (each holds server threads and a
        socket; one more is refused until one ends): ``max_connections`` of the project's
        server, else the project's sites plus :data:`CONNECTION_ROOM`."""
        if self.connections is not None:
            return self.connections
        return (0 if self.sites is None else len(self.sites)) + CONNECTION_ROOM

    @property
    def public_host(self) -> str:
        """The address sites and admins use to reach this server."""
        return self.name if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104

    @property
    def startup(self) -> Path:
        """The kit's startup/ folder."""
        return self.root / "startup"

    @classmethod
    def load(cls, root: Path) -> ServerKit:
        """Read ``root/startup/fed_server.json``."""
        path = root / "startup" / SERVER_FILE
        file = read_json_as(path, ServerFile)
        return cls(
            root=root,
            name=file.name,
            org=file.org,
            host=file.host,
            fed_port=file.fed_learn_port,
            admin_port=file.admin_port,
            max_jobs=file.max_jobs,
            heartbeat_timeout=file.heartbeat_timeout,
            sites=None if file.sites is None else tuple(file.sites),
            job_aging_s=file.job_aging_s,
            overseer=file.overseer,
            job_store=_job_store(file, root, path),
            receive_window=_server_window(root, file),
            max_job_bytes=file.max_job_bytes,
            roster=_roster(file, path),
            project=file.project,
            connections=file.max_connections,
        )


@dataclass(frozen=True)
class SiteKit:
    """Settings of a site parent."""

    root: Path
    name: str
    org: str
    server_host: str
    server_name: str
    fed_port: int
    heartbeat_interval: float
    #: The project's overseer, for high availability: the site connects to the hot server.
    overseer: OverseerEntry | None = None
    #: The project's admins and revoked participants (empty lists: the kit has none).
    roster: Roster = field(default_factory=Roster)
    #: Bytes of a download from the server in flight before the server waits for this site
    #: to read (``network``, see docs/networks.md); None: gRPC's own (BDP probing).
    receive_window: int | None = None

    @property
    def startup(self) -> Path:
        """The kit's startup/ folder."""
        return self.root / "startup"

    @property
    def target(self) -> str:
        """``host:port`` of the server."""
        return f"{self.server_host}:{self.fed_port}"

    @classmethod
    def load(cls, root: Path) -> SiteKit:
        """Read ``root/startup/fed_client.json``."""
        path = root / "startup" / CLIENT_FILE
        file = read_json_as(path, SiteFile)
        return cls(
            root=root,
            name=file.name,
            org=file.org,
            server_host=file.server_host,
            server_name=file.server_name,
            fed_port=file.fed_learn_port,
            heartbeat_interval=file.heartbeat_interval,
            overseer=file.overseer,
            roster=_roster(file, path),
            receive_window=_site_window(root, file),
        )
