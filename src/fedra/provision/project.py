"""The project a federation is provisioned from: ``project.yml`` as frozen msgspec schemas.

A project names its participants: at most one overseer, one or more servers, the sites
(``client``) and the people who use the admin console (``admin``, with a role). The names of
servers and the overseer are the host names everyone connects to; admins are named by e-mail.
Each participant is a ``msgspec.Struct`` whose constrained types (``msgspec.Meta``: pattern,
bounds and a ``description`` that error messages and the JSON Schema both use) are the
shape of the file; :class:`ProjectFile` is the whole file. :func:`fedra.provision.load_project`
converts a file and checks the rules between participants (:mod:`fedra.provision.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from fedra.core.kitfile import JobStoreEntry, MaxConnections, NetworkEntry

#: The one ``api_version`` this Fedra reads.
API_VERSION = 1
#: Default ports of a server: sites connect to the first, admins to the second.
DEFAULT_FED_LEARN_PORT = 8002
DEFAULT_ADMIN_PORT = 8003
#: Default settings of an overseer.
DEFAULT_OVERSEER_PORT = 8443
DEFAULT_API_ROOT = "/api/v1"
#: The participant types of ``project.yml``.
PARTICIPANT_TYPES = ("overseer", "server", "client", "admin")

_NO_CONTROL = r"[^\x00-\x1f\x7f]"
_EDGE = r"[^\s\x00-\x1f\x7f]"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"^(?=.{{1,64}}$)({_LABEL}(\.{_LABEL})*\.?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535, description="an integer 1-65535")]
Org = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^(?=.{{1,64}}$){_EDGE}({_NO_CONTROL}*{_EDGE})?$",
        description="an organisation name (1-64 characters, no control characters)",
    ),
]
Host = Annotated[str, msgspec.Meta(pattern=_HOST, description="a host name or IP address")]
HostName = Annotated[
    str,
    msgspec.Meta(pattern=_HOST, description="a host name (the name everyone connects to, 64 max)"),
]
SiteName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="a site name (letters, digits, . _ -; 64 max)",
    ),
]
Email = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?=.{1,64}$)[A-Za-z0-9._%+-]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(\.[A-Za-z0-9-]+)*$",
        description="an e-mail address such as admin@example.org",
    ),
]
Role = Literal["lead", "member", "org_admin", "project_admin"]


class Overseer(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="overseer"
):
    """The overseer of a high-availability federation (``fedra overseer start``)."""

    name: HostName
    org: Org
    protocol: Literal["https"] = "https"
    api_root: Annotated[
        str, msgspec.Meta(pattern=r"^/[A-Za-z0-9._~/-]*$", description="a URL path starting with /")
    ] = DEFAULT_API_ROOT
    port: Port = DEFAULT_OVERSEER_PORT
    host: Host | None = None

    @property
    def type(self) -> str:
        """``"overseer"``."""
        return "overseer"

    @property
    def address(self) -> str:
        """Where it listens and others connect: ``host`` when set, else its name."""
        return self.host or self.name


class Server(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="server"
):
    """A server: sites connect to ``fed_learn_port`` and admins to ``admin_port`` of it."""

    name: HostName
    org: Org
    fed_learn_port: Port = DEFAULT_FED_LEARN_PORT
    admin_port: Port = DEFAULT_ADMIN_PORT
    enable_byoc: bool = False
    #: Flow control for sites far away (``receive_window`` or ``path_mbit`` + ``path_rtt_ms``);
    #: None: the default window (``fedra.core.kitfile.DEFAULT_WINDOW``).
    network: NetworkEntry | None = None
    host: Host | None = None
    #: Where jobs are stored (``fedra.jobstore.open_store``); the same shared storage for every
    #: server of a high-availability project. None: the server's own ``store/`` folder.
    job_store: JobStoreEntry | None = None
    #: Site connections the server serves at once (each holds a few threads and a socket).
    #: None: the project's sites plus room for reconnections (``ServerKit.max_connections``).
    max_connections: MaxConnections | None = None

    @property
    def type(self) -> str:
        """``"server"``."""
        return "server"

    @property
    def address(self) -> str:
        """Where it listens and others connect: ``host`` when set, else its name."""
        return self.host or self.name


class Client(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="client"
):
    """A site (an FL client) that trains on its own data."""

    name: SiteName
    org: Org
    enable_byoc: bool = False
    #: Flow control of the downloads from a far server; None: gRPC's own (BDP probing).
    network: NetworkEntry | None = None

    @property
    def type(self) -> str:
        """``"client"``."""
        return "client"


class Admin(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="admin"):
    """A person who uses the admin console; ``role`` decides what they may do."""

    name: Email
    org: Org
    role: Role

    @property
    def type(self) -> str:
        """``"admin"``."""
        return "admin"


#: Any participant of a project.
Participant = Overseer | Server | Client | Admin


class ProjectFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``project.yml`` as written; :class:`Project` adds where it was read from."""

    api_version: Annotated[Literal[1], msgspec.Meta(description=f"{API_VERSION}")]
    name: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            description="a project name (letters, digits, . _ -)",
        ),
    ]
    participants: Annotated[
        list[Participant], msgspec.Meta(min_length=1, description="a non-empty list")
    ]
    description: str = ""
    docker_image: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$",
                description="a docker image name such as repo:tag",
            ),
        ]
        | None
    ) = None
    #: Whether kits carry CKKS key files (sites: secret context; servers: public context).
    homomorphic_encryption: bool = False
    #: Participants (names) and certificates (``sha256:`` fingerprints) revoked for good.
    revoked: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]],
        msgspec.Meta(
            description="a list of participant names and sha256:<64 hex> certificate fingerprints"
        ),
    ] = []


@dataclass(frozen=True)
class Project:
    """A validated ``project.yml``: its name, participants and project-wide options."""

    name: str
    participants: tuple[Participant, ...]
    description: str = ""
    docker_image: str | None = None
    api_version: int = API_VERSION
    source: Path | None = None
    #: Whether kits carry CKKS key files (sites: secret context; servers: public context).
    homomorphic_encryption: bool = False
    #: Participants revoked for good (their names): every kit lists them and refuses them,
    #: whatever certificate of the project's CA they present (docs/provisioning.md).
    revoked: tuple[str, ...] = ()

    @property
    def servers(self) -> tuple[Server, ...]:
        """The servers, in file order (sites connect to the first)."""
        return tuple(p for p in self.participants if isinstance(p, Server))

    @property
    def clients(self) -> tuple[Client, ...]:
        """The sites, in file order."""
        return tuple(p for p in self.participants if isinstance(p, Client))

    @property
    def admins(self) -> tuple[Admin, ...]:
        """The admins, in file order."""
        return tuple(p for p in self.participants if isinstance(p, Admin))

    @property
    def overseer(self) -> Overseer | None:
        """The overseer, if the project has one."""
        return next((p for p in self.participants if isinstance(p, Overseer)), None)

    @property
    def primary(self) -> Server:
        """The server sites and admins connect to first."""
        return self.servers[0]
