"""``fedra poc prepare``: a proof-of-concept workspace, secure by default.

Writes ``<workspace>/server``, ``site-1 … site-N`` and ``admin``, each with ``startup/`` (the
project CA certificate, its own certificate and 0600 key, its connection settings and
scripts) and ``local/`` (settings a participant may edit: the ``*.default`` files a
provisioned kit has, see :mod:`fedra.runtime.kit_local`).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fedra.core import ConfigError
from fedra.he import HEKeys, write_server_context, write_site_context
from fedra.pki import CertKey, Identity, create_ca, sign_kit, write_participant
from fedra.poc.scripts import write_admin_script, write_participant_scripts
from fedra.runtime import RESTART_EXIT_CODE, write_local

MARKER = ".fedra-poc"


@dataclass(frozen=True)
class PocLayout:
    """Where a POC workspace's participants live."""

    root: Path
    sites: tuple[str, ...]

    @property
    def server(self) -> Path:
        """The server's folder."""
        return self.root / "server"

    @property
    def admin(self) -> Path:
        """The admin's folder."""
        return self.root / "admin"

    def site(self, name: str) -> Path:
        """A site's folder."""
        return self.root / name

    @classmethod
    def load(cls, root: Path) -> PocLayout:
        """Read a prepared workspace."""
        marker = root / MARKER
        if not marker.is_file():
            raise ConfigError(f"{root} is not a POC workspace (run `fedra poc prepare` first)")
        data = json.loads(marker.read_text())
        return cls(root, tuple(data["sites"]))


def _json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def prepare(
    root: Path,
    num_sites: int = 2,
    *,
    host: str = "localhost",
    fed_port: int = 8002,
    admin_port: int = 8003,
    org: str = "fedra",
    admin: str = "admin@fedra.local",
    force: bool = False,
    python: str | None = None,
    he: bool = False,
) -> PocLayout:
    """Write the workspace; refuse to replace an existing one unless ``force``.

    ``he``: also write a CKKS context for homomorphic encryption, the secret one into every
    site's ``startup/``, the public one into the server's (see :mod:`fedra.he`).
    """
    if num_sites < 1:
        raise ConfigError(f"-n must be at least 1, got {num_sites}")
    if fed_port == admin_port:
        raise ConfigError("the FL port and the admin port must differ")
    _clear_workspace(root, force)
    python = python or sys.executable
    ca = create_ca("fedra-poc")
    sites = tuple(f"site-{i}" for i in range(1, num_sites + 1))
    layout = PocLayout(root, sites)
    _write_server(
        layout, ca, org=org, host=host, fed_port=fed_port, admin_port=admin_port, python=python
    )
    for site in sites:
        _write_site(layout, ca, site, org=org, host=host, fed_port=fed_port, python=python)
    _write_admin(layout, ca, admin, org=org, host=host, admin_port=admin_port, python=python)
    if he:
        keys = HEKeys.generate()
        write_server_context(layout.server / "startup", keys)
        for site in sites:
            write_site_context(layout.site(site) / "startup", keys)
    for folder in (layout.server, *(layout.site(s) for s in sites), layout.admin):
        sign_kit(folder, ca)
    _json(root / MARKER, {"sites": list(sites), "fed_port": fed_port, "admin_port": admin_port})
    return layout


def _clear_workspace(root: Path, force: bool) -> None:
    """An empty ``root``: a previous POC workspace is removed only when ``force``; any other
    non-empty folder is never replaced."""
    if root.exists() and any(root.iterdir()):
        if not force:
            raise ConfigError(f"{root} already exists; use --force to replace it")
        if not (root / MARKER).is_file():
            raise ConfigError(f"{root} exists and is not a POC workspace: not replacing it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def _write_server(
    layout: PocLayout,
    ca: CertKey,
    *,
    org: str,
    host: str,
    fed_port: int,
    admin_port: int,
    python: str,
) -> None:
    """The server's kit: certificate for every name it is reached by, settings, scripts."""
    startup = layout.server / "startup"
    write_participant(
        startup,
        ca,
        Identity("server", org, "server"),
        file_stem="server",
        hosts=sorted({host, "localhost", "127.0.0.1", "server"}),
    )
    server_config = {
        "name": "server",
        "org": org,
        "host": host,
        "fed_learn_port": fed_port,
        "admin_port": admin_port,
        "sites": list(layout.sites),  # only these may join, even with the project CA's certificate
    }
    _json(startup / "fed_server.json", server_config)
    write_participant_scripts(startup, "fedra.runtime.server_parent", python, RESTART_EXIT_CODE)
    # The same local/*.default files as a provisioned kit; a POC runs jobs' own code (byoc).
    write_local(layout.server, "server", org, server=True, enable_byoc=True)


def _write_site(
    layout: PocLayout,
    ca: CertKey,
    site: str,
    *,
    org: str,
    host: str,
    fed_port: int,
    python: str,
) -> None:
    """One site's kit: its client certificate, where the server is, scripts."""
    startup = layout.site(site) / "startup"
    write_participant(startup, ca, Identity(site, org, "client"), file_stem="client")
    _json(
        startup / "fed_client.json",
        {
            "name": site,
            "org": org,
            "server_host": host,
            "server_name": "server",
            "fed_learn_port": fed_port,
        },
    )
    write_participant_scripts(startup, "fedra.runtime.site_parent", python, RESTART_EXIT_CODE)
    write_local(layout.site(site), site, org, server=False, enable_byoc=True)


def _write_admin(
    layout: PocLayout,
    ca: CertKey,
    admin: str,
    *,
    org: str,
    host: str,
    admin_port: int,
    python: str,
) -> None:
    """The project admin's kit: certificate, where the admin port is, the console script."""
    startup = layout.admin / "startup"
    write_participant(startup, ca, Identity(admin, org, "project_admin"), file_stem="client")
    _json(
        startup / "fed_admin.json",
        {
            "name": admin,
            "org": org,
            "role": "project_admin",
            "server_host": host,
            "server_name": "server",
            "admin_port": admin_port,
        },
    )
    write_admin_script(startup, python)
