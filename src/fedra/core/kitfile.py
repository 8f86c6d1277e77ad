"""The connection files of a startup kit (``startup/fed_*.json``), declared once.

Provisioning (and ``fedra poc prepare``) writes them, the server and site parents
(:mod:`fedra.runtime.config`) and the admin console (:mod:`fedra.admin.kit`) read them with
these schemas, and ``docs/schemas/fed_*.schema.json`` are generated from them.
Unknown keys are errors: a misspelt option must not be ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from fedra.core.safezip import MAX_JOB_ARCHIVE_BYTES, MAX_JOB_BYTES

#: A TCP port.
Port = Annotated[int, msgspec.Meta(ge=1, le=65535, description="a port number 1-65535")]
#: A name that is part of a certificate (CN or O): one line, no control characters.
Text = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\s*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
        max_length=255,
        description="a non-empty string",
    ),
]
Seconds = Annotated[float, msgspec.Meta(gt=0, description="a number of seconds > 0")]
#: Site connections a server serves at once.
MaxConnections = Annotated[
    int, msgspec.Meta(ge=1, le=100_000, description="an integer 1-100000 (connections)")
]


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A kit file: frozen, and no key the schema does not declare."""


class OverseerEntry(_File, frozen=True):
    """Where the project's overseer is (high availability); in every kit of an HA project."""

    name: Text
    host: Text
    port: Port
    url: Annotated[str, msgspec.Meta(description="https://host:port/api_root")]
    protocol: Literal["https"] = "https"
    api_root: Annotated[str, msgspec.Meta(pattern="^/", description="a path starting with /")] = (
        "/api/v1"
    )


class ServerEntry(_File, frozen=True):
    """A server of the project, as sites and admins list them."""

    name: Text
    host: Text
    fed_learn_port: Port
    admin_port: Port


class AdminEntry(_File, frozen=True):
    """An admin of the project, as servers and sites list them."""

    name: Text
    org: str
    role: str


class JobStoreEntry(_File, frozen=True, omit_defaults=True):
    """Where a server keeps its jobs (``fedra.jobstore.open_store`` checks the values further)."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Annotated[str, msgspec.Meta(description="an absolute folder path")] | None = None
    dsn: Annotated[str, msgspec.Meta(description="a PostgreSQL connection string")] | None = None
    schema: str | None = None
    timeout: Seconds | None = None


#: Bytes one stream may have in flight towards this side (an HTTP/2 flow-control window).
Window = Annotated[
    int, msgspec.Meta(ge=64 << 10, le=64 << 20, description="an integer 65536-67108864 (bytes)")
]
#: The smallest and largest window a path's bandwidth-delay product gives, and the default.
MIN_PATH_WINDOW = 256 << 10
MAX_PATH_WINDOW = 64 << 20
DEFAULT_WINDOW = 16 << 20
#: A path's window in bandwidth-delay products: gRPC lets the window run down to about half
#: before it announces more, and the update takes half a round trip to arrive (measured over
#: an emulated 1 Gbit/s, 50 ms path: 1.3x the product gave 60% of the link, 2.7x 71%, 5.4x 85%).
PATH_WINDOWS = 4


class NetworkEntry(_File, frozen=True, omit_defaults=True):
    """``network:``: how much one peer may send ahead to this participant on one connection.

    ``receive_window`` in bytes, or the path it should fill: ``path_mbit`` (the expected
    rate) and ``path_rtt_ms`` (the round trip) give :data:`PATH_WINDOWS` times their product
    (see :meth:`window`). Neither: the server's :data:`DEFAULT_WINDOW`; a site's gRPC's own.
    """

    receive_window: Window | None = None
    path_mbit: (
        Annotated[float, msgspec.Meta(gt=0, le=100_000, description="a rate in Mbit/s > 0")] | None
    ) = None
    path_rtt_ms: (
        Annotated[float, msgspec.Meta(gt=0, le=10_000, description="a round trip in ms > 0")] | None
    ) = None

    def window(self) -> int | None:
        """The window these settings ask for; None when they name none."""
        if self.receive_window is not None:
            return self.receive_window
        if self.path_mbit is None or self.path_rtt_ms is None:
            return None
        bdp = self.path_mbit * 1e6 / 8 * self.path_rtt_ms / 1e3
        window = -(-int(PATH_WINDOWS * bdp) // (64 << 10)) * (64 << 10)  # whole 64 KiB
        return min(MAX_PATH_WINDOW, max(MIN_PATH_WINDOW, window))


#: A participant's own flow-control settings, in its kit's ``local/`` folder.
NETWORK_FILE = "network.json"


class NetworkFile(NetworkEntry, frozen=True, omit_defaults=True):
    """``local/network.json``: a participant's own ``network`` settings (never signed);
    when present it replaces the ``network`` its kit was provisioned with."""

    comment: str = ""
    format_version: Literal[1] = 1


class ServerFile(_File, frozen=True):
    """``startup/fed_server.json``: a server's own settings."""

    name: Text
    project: str = ""
    org: str = ""
    host: str = "0.0.0.0"  # noqa: S104 - a server listens
    fed_learn_port: Port = 8002
    admin_port: Port = 8003
    max_jobs: Annotated[int, msgspec.Meta(ge=1, description="an integer >= 1")] = 4
    heartbeat_timeout: Seconds = 60.0
    job_aging_s: Seconds = 300.0
    #: The sites of the project; None: any site with a certificate of the project's CA.
    sites: list[str] | None = None
    overseer: OverseerEntry | None = None
    job_store: JobStoreEntry | None = None
    #: Older name of ``network.receive_window`` (POC kits): used when ``network`` names none.
    receive_window: Window | None = None
    #: Flow control for long paths, from ``project.yml`` (``local/network.json`` overrides).
    network: NetworkEntry | None = None
    #: The largest job archive (zip) an admin may upload: 1 MiB to a job's unpacked bound.
    max_job_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1 << 20, le=MAX_JOB_BYTES, description=f"an integer 1048576-{MAX_JOB_BYTES} (bytes)"
        ),
    ] = MAX_JOB_ARCHIVE_BYTES
    admins: list[AdminEntry] | None = None
    revoked: list[str] | None = None
    #: Site connections served at once; None: the sites listed plus room (see ServerKit).
    max_connections: MaxConnections | None = None


class SiteFile(_File, frozen=True):
    """``startup/fed_client.json``: a site's settings and where its server is."""

    name: Text
    server_host: Text
    project: str = ""
    org: str = ""
    server_name: str = "server"
    fed_learn_port: Port = 8002
    heartbeat_interval: Seconds = 5.0
    servers: list[ServerEntry] = []
    overseer: OverseerEntry | None = None
    #: Flow control of the downloads from the server (``local/network.json`` overrides).
    network: NetworkEntry | None = None
    admins: list[AdminEntry] | None = None
    revoked: list[str] | None = None


class AdminFile(_File, frozen=True):
    """``startup/fed_admin.json``: who the admin is and where the server's admin port is."""

    name: Text
    role: Literal["lead", "member", "org_admin", "project_admin"]
    server_host: Text
    admin_port: Port
    project: str = ""
    org: str = ""
    server_name: Text | None = None
    servers: list[ServerEntry] = []
    overseer: OverseerEntry | None = None
