"""The startup configuration of a server or a site, read from its kit's ``startup/`` folder.

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
from typing import Any

from fedra.core import ConfigError
from fedra.core.jsonfile import read_json_object, typed
from fedra.core.safezip import MAX_JOB_ARCHIVE_BYTES, MAX_JOB_BYTES
from fedra.runtime.peers import Roster

SERVER_FILE = "fed_server.json"
CLIENT_FILE = "fed_client.json"


#: Bounds of ``receive_window`` in fed_server.json: 64 KiB (HTTP/2's own default) to 64 MiB.
RECEIVE_WINDOW_RANGE = (64 << 10, 64 << 20)


def _receive_window(data: dict[str, Any], path: Path) -> int | None:
    if "receive_window" not in data:
        return None
    value = typed(data, path, "receive_window", int)
    low, high = RECEIVE_WINDOW_RANGE
    if not low <= value <= high:
        raise ConfigError(f"{path}: receive_window must be {low} to {high} bytes, got {value}")
    return int(value)


#: Bounds of ``max_job_bytes`` in fed_server.json: 1 MiB to the bound on a job's unpacked size.
MAX_JOB_BYTES_RANGE = (1 << 20, MAX_JOB_BYTES)


def _max_job_bytes(data: dict[str, Any], path: Path) -> int:
    value = typed(data, path, "max_job_bytes", int, MAX_JOB_ARCHIVE_BYTES)
    low, high = MAX_JOB_BYTES_RANGE
    if not low <= value <= high:
        raise ConfigError(f"{path}: max_job_bytes must be {low} to {high} bytes, got {value}")
    return int(value)


def _sites(data: dict[str, Any], path: Path) -> tuple[str, ...] | None:
    sites = data.get("sites")
    if sites is None:
        return None
    if not isinstance(sites, list) or not all(isinstance(x, str) for x in sites):
        raise ConfigError(f"{path}: sites: expected a list of site names, got {sites!r}")
    return tuple(sites)


def _optional_dict(data: dict[str, Any], path: Path, key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{path}: {key}: expected an object, got {value!r}")
    return value


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
    overseer: dict[str, Any] | None = None
    #: The job store (``fedra.store.open_store``): shared by all servers with an overseer.
    job_store: dict[str, Any] | None = None
    #: Bytes of one site's upload the server buffers before the site waits (None: the
    #: transport's default, 256 KiB). Bigger is faster over long round trips and costs the
    #: server about twice this per connected site.
    receive_window: int | None = None
    #: The largest job archive (zip) an admin may upload, in bytes: a bigger upload is refused
    #: from its declared size, before its body is received.
    max_job_bytes: int = MAX_JOB_ARCHIVE_BYTES
    #: The project's admins and revoked participants (empty lists: the kit has none).
    roster: Roster = field(default_factory=Roster)

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
        data = read_json_object(path)
        return cls(
            root=root,
            name=typed(data, path, "name", str),
            org=typed(data, path, "org", str, ""),
            host=typed(data, path, "host", str, "0.0.0.0"),  # noqa: S104 - a server listens
            fed_port=typed(data, path, "fed_learn_port", int, 8002),
            admin_port=typed(data, path, "admin_port", int, 8003),
            max_jobs=typed(data, path, "max_jobs", int, 4),
            heartbeat_timeout=float(typed(data, path, "heartbeat_timeout", (int, float), 60)),
            sites=_sites(data, path),
            job_aging_s=float(typed(data, path, "job_aging_s", (int, float), 300)),
            overseer=_optional_dict(data, path, "overseer"),
            job_store=_optional_dict(data, path, "job_store"),
            receive_window=_receive_window(data, path),
            max_job_bytes=_max_job_bytes(data, path),
            roster=Roster.from_config(data, path),
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
    overseer: dict[str, Any] | None = None
    #: The project's admins and revoked participants (empty lists: the kit has none).
    roster: Roster = field(default_factory=Roster)

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
        data = read_json_object(path)
        return cls(
            root=root,
            name=typed(data, path, "name", str),
            org=typed(data, path, "org", str, ""),
            server_host=typed(data, path, "server_host", str),
            server_name=typed(data, path, "server_name", str, "server"),
            fed_port=typed(data, path, "fed_learn_port", int, 8002),
            heartbeat_interval=float(typed(data, path, "heartbeat_interval", (int, float), 5)),
            overseer=_optional_dict(data, path, "overseer"),
            roster=Roster.from_config(data, path),
        )
