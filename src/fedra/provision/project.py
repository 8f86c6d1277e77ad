"""The project a federation is provisioned from: ``project.yml`` as frozen dataclasses.

A project names its participants: at most one overseer, one or more servers, the sites
(``client``) and the people who use the admin console (``admin``, with a role). The names of
servers and the overseer are the host names everyone connects to; admins are named by e-mail.
:func:`fedra.provision.load_project` builds these from a file and checks every rule below;
the dataclasses hold values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Overseer:
    """The overseer of a high-availability federation (``fedra overseer start``)."""

    name: str
    org: str
    protocol: str = "https"
    api_root: str = DEFAULT_API_ROOT
    port: int = DEFAULT_OVERSEER_PORT
    host: str | None = None

    @property
    def type(self) -> str:
        """``"overseer"``."""
        return "overseer"

    @property
    def address(self) -> str:
        """Where it listens and others connect: ``host`` when set, else its name."""
        return self.host or self.name


@dataclass(frozen=True)
class Server:
    """A server: sites connect to ``fed_learn_port`` and admins to ``admin_port`` of it."""

    name: str
    org: str
    fed_learn_port: int = DEFAULT_FED_LEARN_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    enable_byoc: bool = False
    host: str | None = None
    #: Where jobs are stored (``fedra.store.open_store``); the same shared storage for every
    #: server of a high-availability project. None: the server's own ``store/`` folder.
    job_store: dict[str, Any] | None = None

    @property
    def type(self) -> str:
        """``"server"``."""
        return "server"

    @property
    def address(self) -> str:
        """Where it listens and others connect: ``host`` when set, else its name."""
        return self.host or self.name


@dataclass(frozen=True)
class Client:
    """A site (an FL client) that trains on its own data."""

    name: str
    org: str
    enable_byoc: bool = False

    @property
    def type(self) -> str:
        """``"client"``."""
        return "client"


@dataclass(frozen=True)
class Admin:
    """A person who uses the admin console; ``role`` decides what they may do."""

    name: str
    org: str
    role: str

    @property
    def type(self) -> str:
        """``"admin"``."""
        return "admin"


#: Any participant of a project.
Participant = Overseer | Server | Client | Admin


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
