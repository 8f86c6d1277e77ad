"""The admin kit: who the admin is, where the server is, and the certificates to prove it.

A kit is a folder with ``startup/fed_admin.json`` (name, org, role, server_host, server_name,
admin_port), ``startup/rootCA.pem``, ``startup/client.crt`` and ``startup/client.key``.
``fedra poc prepare`` writes one to ``poc/admin``; provisioning writes one per admin. Loading
validates everything up front (the schema: :class:`fedra.core.kitfile.AdminFile`), and every
error names the file and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fedra.admin.errors import KitError
from fedra.core.jsonfile import JsonObject, convert
from fedra.core.kitfile import AdminFile, OverseerEntry

#: The kit's startup folder, and the files in it.
STARTUP_DIR = "startup"
KIT_FILE = "fed_admin.json"
ROOT_CA_FILE = "rootCA.pem"
CERT_FILE = "client.crt"
KEY_FILE = "client.key"
#: Where ``fedra poc prepare`` puts the admin kit, relative to the current folder.
DEFAULT_KIT = Path("poc") / "admin"
#: Folder of a kit where downloaded jobs land unless another is given.
TRANSFER_DIR = "transfer"

_MAX_KIT_BYTES = 1 << 16


@dataclass(frozen=True)
class AdminKit:
    """A validated admin kit."""

    root: Path
    name: str
    org: str
    role: str
    server_host: str
    server_name: str
    admin_port: int
    #: The project's overseer block (high availability): the console asks it for the hot server.
    overseer: OverseerEntry | None = None

    @property
    def startup(self) -> Path:
        """The kit's startup folder."""
        return self.root / STARTUP_DIR

    @property
    def target(self) -> str:
        """``host:port`` of the server's admin endpoint."""
        return f"{self.server_host}:{self.admin_port}"

    @property
    def transfer_dir(self) -> Path:
        """Where downloaded jobs go by default: ``<kit>/transfer``."""
        return self.root / TRANSFER_DIR

    @classmethod
    def load(cls, root: str | Path) -> AdminKit:
        """Load and validate the kit in ``root`` (the kit folder, or its startup folder)."""
        root = Path(root).expanduser()
        if root.name == STARTUP_DIR and (root / KIT_FILE).is_file():
            root = root.parent
        if not root.is_dir():
            raise KitError(f"admin kit {root} does not exist")
        path = root / STARTUP_DIR / KIT_FILE
        spec = convert(
            _read_object(path), AdminFile, lambda p: KitError(f"{path}: {p.key}: {p.message}")
        )
        kit = cls(
            root=root,
            name=spec.name,
            org=spec.org,
            role=spec.role,
            server_host=spec.server_host,
            server_name=spec.server_name or spec.server_host,
            admin_port=spec.admin_port,
            overseer=spec.overseer,
        )
        for file, what in (
            (ROOT_CA_FILE, "the project's root CA"),
            (CERT_FILE, "the admin's certificate"),
            (KEY_FILE, "the admin's private key"),
        ):
            if not (kit.startup / file).is_file():
                raise KitError(f"{kit.startup / file}: expected this file ({what}) to exist")
        return kit

    @classmethod
    def find(cls, kit: str | Path | None = None) -> AdminKit:
        """Load ``kit``, or the POC kit ``./poc/admin`` when none is given."""
        if kit is not None:
            return cls.load(kit)
        if DEFAULT_KIT.is_dir():
            return cls.load(DEFAULT_KIT)
        raise KitError(f"no admin kit given, and there is no {DEFAULT_KIT} in the current folder")

    def credentials(self) -> tuple[bytes, bytes, bytes]:
        """The PEM bytes of (root CA, admin certificate, admin private key)."""
        from fedra.pki import TlsFiles

        files = TlsFiles(
            ca=self.startup / ROOT_CA_FILE,
            cert=self.startup / CERT_FILE,
            key=self.startup / KEY_FILE,
        )
        return files.load()


def _read_object(path: Path) -> JsonObject:
    if not path.is_file():
        raise KitError(f"{path}: expected this file to exist")
    if path.stat().st_size > _MAX_KIT_BYTES:
        raise KitError(f"{path}: expected at most {_MAX_KIT_BYTES} bytes")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise KitError(f"{path}: expected UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise KitError(
            f"{path}: line {exc.lineno} column {exc.colno}: expected valid JSON ({exc.msg})"
        ) from exc
    if not isinstance(value, dict):
        raise KitError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
