"""Kits and the overseer: its own kit's settings, and the overseer client of any other kit.

The overseer's kit (written by ``fedra provision``)::

    <overseer>/startup/fed_overseer.json   name, org, host, port, api_root, servers (signed)
    <overseer>/startup/rootCA.pem  overseer.crt  overseer.key
    <overseer>/local/overseer.json         optional: heartbeat_interval, heartbeat_timeout,
                                           lease, lease_margin (a copy of the .default file)
    <overseer>/overseer_state.json         its saved state (written by the overseer)

Server, site and admin kits find the overseer in the ``overseer`` block of their
``startup/fed_server.json``, ``fed_client.json`` or ``fed_admin.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedra.core import ConfigError
from fedra.core.jsonfile import read_json_object, typed
from fedra.overseer.client import DEFAULT_TIMEOUT, OverseerClient, overseer_url
from fedra.overseer.settings import SETTING_KEYS, OverseerSettings
from fedra.overseer.statefile import STATE_FILE
from fedra.pki import STARTUP_DIR, TlsFiles

#: The overseer's config file in ``startup/``, and its local overrides in ``local/``.
OVERSEER_FILE = "fed_overseer.json"
LOCAL_FILE = "overseer.json"
#: Config file and certificate stem of the kits that talk to the overseer.
_CLIENT_KITS = (
    ("fed_server.json", "server"),
    ("fed_client.json", "client"),
    ("fed_admin.json", "client"),
)


@dataclass(frozen=True)
class OverseerKit:
    """The settings of an overseer, read from its startup kit."""

    root: Path
    name: str
    org: str
    host: str
    port: int
    api_root: str
    settings: OverseerSettings
    #: The project's servers: only these may register; ``None`` lets any server cert in.
    servers: frozenset[str] | None
    #: Participants the project revoked: refused whatever their certificate (none: empty).
    revoked: frozenset[str] = frozenset()
    #: The project's admins as (name, org, role); ``None`` lets any admin cert of the CA in.
    admins: frozenset[tuple[str, str, str]] | None = None

    @property
    def tls(self) -> TlsFiles:
        """The overseer's CA, certificate and key in ``startup/``."""
        return TlsFiles.in_dir(self.root / STARTUP_DIR, "overseer")

    @property
    def state_file(self) -> Path:
        """Where the overseer saves its state."""
        return self.root / STATE_FILE

    @property
    def url(self) -> str:
        """The URL everyone else uses."""
        return f"https://{self.host}:{self.port}{self.api_root}"

    @classmethod
    def load(cls, root: Path) -> OverseerKit:
        """Read ``startup/fed_overseer.json`` and ``local/overseer.json`` (when present)."""
        root = Path(root)
        path = root / STARTUP_DIR / OVERSEER_FILE
        data = read_json_object(path, what="a startup kit")
        settings = OverseerSettings.from_mapping(data, where=str(path))
        local_path = root / "local" / LOCAL_FILE
        local = read_json_object(local_path, required=False)
        extra = sorted(set(local) - set(SETTING_KEYS) - {"comment", "format_version"})
        if extra:
            raise ConfigError(
                f"{local_path}: unknown key {extra[0]!r} (expected {', '.join(SETTING_KEYS)})"
            )
        settings = OverseerSettings.from_mapping(local, where=str(local_path), base=settings)
        servers = data.get("servers")
        if servers is not None and (
            not isinstance(servers, list) or not all(isinstance(s, str) for s in servers)
        ):
            raise ConfigError(f"{path}: servers: expected a list of server names, got {servers!r}")
        revoked = data.get("revoked", [])
        if not isinstance(revoked, list) or not all(isinstance(s, str) for s in revoked):
            raise ConfigError(f"{path}: revoked: expected a list of names, got {revoked!r}")
        admins = _admins(data.get("admins"), path)
        api_root = typed(data, path, "api_root", str, "/api/v1")
        if not api_root.startswith("/"):
            raise ConfigError(
                f"{path}: api_root: expected a path starting with /, got {api_root!r}"
            )
        port = typed(data, path, "port", int, 8443)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{path}: port: expected 0-65535, got {port}")
        return cls(
            root=root,
            name=typed(data, path, "name", str),
            org=typed(data, path, "org", str, ""),
            host=typed(data, path, "host", str, typed(data, path, "name", str)),
            port=port,
            api_root=api_root.rstrip("/") or "/",
            settings=settings,
            servers=None if servers is None else frozenset(servers),
            revoked=frozenset(revoked),
            admins=admins,
        )


def _admins(value: object, path: Path) -> frozenset[tuple[str, str, str]] | None:
    if value is None:
        return None
    keys = ("name", "org", "role")
    if not isinstance(value, list) or not all(
        isinstance(a, dict) and all(isinstance(a.get(k), str) for k in keys) for a in value
    ):
        raise ConfigError(f"{path}: admins: expected a list of {{name, org, role}}, got {value!r}")
    return frozenset((a["name"], a["org"], a["role"]) for a in value)


def client_for_kit(root: Path, *, timeout: float = DEFAULT_TIMEOUT) -> OverseerClient:
    """An :class:`OverseerClient` for a server, site or admin kit (its ``overseer`` block
    and its own certificate). Raises :class:`ConfigError` when the kit names no overseer."""
    startup = Path(root) / STARTUP_DIR
    for file, stem in _CLIENT_KITS:
        path = startup / file
        if path.is_file():
            entry = read_json_object(path, what="a startup kit").get("overseer")
            if not isinstance(entry, dict):
                raise ConfigError(
                    f"{path}: no overseer block: the project has no overseer "
                    "(add one to project.yml and provision again)"
                )
            return OverseerClient(
                overseer_url(entry), TlsFiles.in_dir(startup, stem), timeout=timeout
            )
    names = ", ".join(file for file, _ in _CLIENT_KITS)
    raise ConfigError(f"{startup}: none of {names}: is this a startup kit?")
