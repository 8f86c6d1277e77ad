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
    receive_window: (
        Annotated[
            int,
            msgspec.Meta(ge=64 << 10, le=64 << 20, description="an integer 65536-67108864 (bytes)"),
        ]
        | None
    ) = None
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
