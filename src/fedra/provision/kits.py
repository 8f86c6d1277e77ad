"""Write one participant's startup kit: certificates, connection config, scripts, local/.

Kit layout (the runtime reads the same files from a POC kit)::

    <name>/startup/  rootCA.pem  <server|client|overseer>.crt  .key (0600)
                     fed_server.json | fed_client.json | fed_admin.json | fed_overseer.json
                     start.sh  sub_start.sh  stop_fl.sh        (servers, sites, the overseer)
                     fl_admin.sh                              (admins)
                     docker.sh  Dockerfile  requirements.txt  (when docker_image is set)
                     signature.json                           (written last, by signing)
    <name>/local/    authorization, privacy, resources and logging *.default (never signed);
                     overseer.json.default for the overseer (heartbeat and lease timing)

Server, site and admin configs carry an ``overseer`` block (host, port, api_root, url) when
the project has an overseer. The signed configs of servers and sites list the project's
admins (``admins``: name, org, role) and the revoked participants (``revoked``); so does
the overseer's: see :mod:`fedra.runtime.peers`.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from fedra.core.kitfile import (
    AdminEntry,
    AdminFile,
    OverseerEntry,
    ServerEntry,
    ServerFile,
    SiteFile,
)
from fedra.he import HEKeys, write_server_context, write_site_context
from fedra.overseer import LOCAL_FILE as OVERSEER_LOCAL_FILE
from fedra.overseer import OverseerSettings
from fedra.pki import STARTUP_DIR, CertKey, Identity, sign_kit, write_participant
from fedra.poc.scripts import write_admin_script, write_participant_scripts
from fedra.provision.docker import write_docker_files
from fedra.provision.project import Admin, Client, Overseer, Participant, Project, Server
from fedra.runtime import RESTART_EXIT_CODE, write_local

#: Config file of each participant type, in ``startup/``.
CONFIG_FILES = {
    "server": "fed_server.json",
    "client": "fed_client.json",
    "admin": "fed_admin.json",
    "overseer": "fed_overseer.json",
}
#: Host names every server certificate also carries, for single-machine deployments.
LOCAL_HOSTS = ("localhost", "127.0.0.1")

_OVERSEER_README = """This is the startup kit of the overseer {name} of project {project}.
The overseer tells servers, sites and admins which server is hot (high availability).
Start it with startup/start.sh (runs `fedra overseer start --kit <this folder>` in the
background, log in log.txt) and stop it with startup/stop_fl.sh. It keeps its state in
overseer_state.json here. To change its timing, copy local/overseer.json.default to
local/overseer.json and edit it. See docs/ha.md.
"""


def write_kit(
    folder: Path,
    participant: Participant,
    project: Project,
    ca: CertKey,
    *,
    python: str,
    he: HEKeys | None = None,
) -> Path:
    """Write and sign the kit of ``participant`` into ``folder`` (created); return ``folder``.

    ``python`` is the interpreter the scripts run (``$FEDRA_PYTHON`` overrides it at start).
    ``he``: the project's CKKS keys; a site gets the secret context, a server the public one
    (``startup/he_context.tenseal``, ``startup/he_public_context.tenseal``; signed).
    """
    folder.mkdir(mode=0o755)
    startup = folder / STARTUP_DIR
    if isinstance(participant, Server):
        _server(startup, participant, project, ca, python)
        write_local(
            folder,
            participant.name,
            participant.org,
            server=True,
            enable_byoc=participant.enable_byoc,
            network_entry=participant.network,
        )
    elif isinstance(participant, Client):
        _client(startup, participant, project, ca, python)
        write_local(
            folder,
            participant.name,
            participant.org,
            server=False,
            enable_byoc=participant.enable_byoc,
            network_entry=participant.network,
        )
    elif isinstance(participant, Admin):
        _admin(startup, participant, project, ca, python)
    else:
        _overseer(startup, participant, project, ca, python)
        local = folder / "local"
        local.mkdir(mode=0o755)
        (local / f"{OVERSEER_LOCAL_FILE}.default").write_text(
            json.dumps(
                {
                    "comment": f"Copy to {OVERSEER_LOCAL_FILE} to change (seconds).",
                    **OverseerSettings().to_json(),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        (folder / "README.txt").write_text(
            _OVERSEER_README.format(name=participant.name, project=project.name),
            encoding="utf-8",
        )
    if he is not None and isinstance(participant, Server):
        write_server_context(startup, he)
    elif he is not None and isinstance(participant, Client):
        write_site_context(startup, he)
    sign_kit(folder, ca)
    return folder


def servers_list(project: Project) -> list[ServerEntry]:
    """Every server of the project, as the clients' and admins' configs list them."""
    return [ServerEntry(s.name, s.address, s.fed_learn_port, s.admin_port) for s in project.servers]


def overseer_entry(project: Project) -> OverseerEntry | None:
    """Where the overseer is, for configs that will use it (HA); ``None`` without one."""
    o = project.overseer
    if o is None:
        return None
    url = f"{o.protocol}://{o.address}:{o.port}{o.api_root}"
    return OverseerEntry(o.name, o.address, o.port, url, o.protocol, o.api_root)


def _server(startup: Path, s: Server, project: Project, ca: CertKey, python: str) -> None:
    hosts = sorted({s.name, s.address, *LOCAL_HOSTS})
    write_participant(
        startup, ca, Identity(s.name, s.org, "server"), file_stem="server", hosts=hosts
    )
    config = ServerFile(
        project=project.name,
        name=s.name,
        org=s.org,
        host=s.address,
        fed_learn_port=s.fed_learn_port,
        admin_port=s.admin_port,
        # Only these sites may join, even with a certificate from the project's CA.
        sites=sorted(c.name for c in project.clients),
        overseer=overseer_entry(project),
        job_store=s.job_store,
        network=s.network,
        admins=_admins(project),
        revoked=sorted(project.revoked),
        max_connections=s.max_connections,
    )
    _json(startup / CONFIG_FILES["server"], config)
    write_participant_scripts(startup, "fedra.runtime.server_parent", python, RESTART_EXIT_CODE)
    _docker(startup, s.name, project)


def _client(startup: Path, c: Client, project: Project, ca: CertKey, python: str) -> None:
    write_participant(startup, ca, Identity(c.name, c.org, "client"), file_stem="client")
    primary = project.primary
    config = SiteFile(
        project=project.name,
        name=c.name,
        org=c.org,
        server_host=primary.address,
        server_name=primary.name,
        fed_learn_port=primary.fed_learn_port,
        servers=servers_list(project),
        overseer=overseer_entry(project),
        network=c.network,
        admins=_admins(project),
        revoked=sorted(project.revoked),
    )
    _json(startup / CONFIG_FILES["client"], config)
    write_participant_scripts(startup, "fedra.runtime.site_parent", python, RESTART_EXIT_CODE)
    _docker(startup, c.name, project)


def _admin(startup: Path, a: Admin, project: Project, ca: CertKey, python: str) -> None:
    write_participant(startup, ca, Identity(a.name, a.org, a.role), file_stem="client")
    primary = project.primary
    config = AdminFile(
        project=project.name,
        name=a.name,
        org=a.org,
        role=a.role,
        server_host=primary.address,
        server_name=primary.name,
        admin_port=primary.admin_port,
        servers=servers_list(project),
        overseer=overseer_entry(project),
    )
    _json(startup / CONFIG_FILES["admin"], config)
    write_admin_script(startup, python)


def _overseer(startup: Path, o: Overseer, project: Project, ca: CertKey, python: str) -> None:
    hosts = sorted({o.name, o.address, *LOCAL_HOSTS})
    write_participant(
        startup, ca, Identity(o.name, o.org, "overseer"), file_stem="overseer", hosts=hosts
    )
    _json(
        startup / CONFIG_FILES["overseer"],
        {
            "project": project.name,
            "name": o.name,
            "org": o.org,
            "host": o.address,
            "protocol": o.protocol,
            "api_root": o.api_root,
            "port": o.port,
            # Only these servers may register, even with a certificate from the project's CA.
            "servers": [s.name for s in project.servers],
            "admins": _admins(project),
            "revoked": sorted(project.revoked),
        },
    )
    write_participant_scripts(startup, "fedra.cli overseer start", python, RESTART_EXIT_CODE)
    _docker(startup, o.name, project)


def _admins(project: Project) -> list[AdminEntry]:
    """The project's admins, as servers, sites and the overseer check them."""
    return [AdminEntry(a.name, a.org, a.role) for a in project.admins]


def _docker(startup: Path, name: str, project: Project) -> None:
    if project.docker_image is not None:
        write_docker_files(startup, name, project.name, project.docker_image)


def _json(path: Path, data: msgspec.Struct | dict[str, object]) -> None:
    """Write a kit file; keys whose value is None (no overseer, no job store) are left out."""
    plain = msgspec.to_builtins(data)
    kept = {key: value for key, value in plain.items() if value is not None}
    path.write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")
