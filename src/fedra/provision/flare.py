"""NVIDIA FLARE 2.x ``project.yml`` files, converted into Fedra's own project file.

FLARE 2.1 (``api_version: 3``) and 2.0 (``api_version: 2``) describe a project with the same
``name``, ``description`` and ``participants`` as Fedra, plus a list of ``builders``: Python
classes that FLARE imports by name to write the kits. Fedra imports nothing by name: it knows
the builders FLARE ships, takes what it has an equivalent for and skips the rest with a note
(:mod:`fedra.provision.flare_builders`); any other builder is refused with its line.

:func:`convert_flare` turns the document into Fedra's (``api_version: 1``) as a
:class:`~fedra.provision.yamlfile.Located` tree that keeps the FLARE file's lines, so that
Fedra's own validation (:func:`fedra.provision.schema.project_from_tree`) names the line of the
FLARE file; :meth:`FlareImport.fedra_yaml` writes it out for users to keep.

What is mapped: participants (``server``, ``client``, ``admin``, ``overseer``), orgs, ports,
``enable_byoc``, admin roles (``role:``, and FLARE 2.1's ``roles: [super]``, which is
``project_admin``), the overseer and high availability (``overseer_agent``), ``docker_image``,
homomorphic encryption (``HEBuilder``) and the servers' job storage (``job_manager``'s
``uri_root``, else the ``snapshot_persistor``'s folder) as their ``job_store``.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from fedra.provision.errors import ProjectError
from fedra.provision.flare_builders import (
    COMPONENTS_WHY,
    Builders,
    Component,
    FlareNote,
    Notes,
    components_of,
    read_builders,
)
from fedra.provision.project import API_VERSION
from fedra.provision.yamlfile import Located, plain

#: The ``api_version`` values of FLARE's project files: 2 (FLARE 2.0), 3 (FLARE 2.1 and later).
FLARE_API_VERSIONS = (2, 3)

_TOP_KEYS = ("api_version", "name", "description", "participants", "builders")
_ROLES = ("project_admin", "org_admin", "lead", "member")
#: FLARE's names for Fedra's roles: 2.1's ``super`` and an early 2.x's ``proj_admin``.
_ROLE_ALIASES = {"super": "project_admin", "proj_admin": "project_admin"}
#: Participant keys of later FLARE 2.x versions that Fedra has no use for, and why.
_IGNORED_KEYS = {
    "host_names": "a Fedra server's certificate names the server, localhost and 127.0.0.1",
    "default_host": "Fedra connects to the server by its name",
    "connection_security": "Fedra always uses mutual TLS",
    "scheme": "Fedra speaks gRPC",
    "docker_comm_port": "Fedra's docker.sh uses host networking",
    "listening_host": "a Fedra site listens on no port",
    "connect_to": "Fedra has no relays: every site connects to the server",
    "capacity": "a site's resources are its kit's local/resources.json",
    "num_of_gpus": "a site's resources are its kit's local/resources.json",
    "mem_per_gpu_in_GiB": "a site's resources are its kit's local/resources.json",
}
_TYPE_KEYS = {
    "server": ("fed_learn_port", "admin_port", "enable_byoc", "components"),
    "client": ("enable_byoc", "components"),
    "admin": ("role", "roles"),
    "overseer": ("protocol", "api_root", "port"),
}


@dataclass(frozen=True)
class FlareImport:
    """A FLARE project file converted: Fedra's document (with the FLARE file's lines) and the
    notes on what was mapped and skipped."""

    file: str
    api_version: int
    document: Located
    notes: tuple[FlareNote, ...]

    def fedra_yaml(self) -> str:
        """The converted document as Fedra's ``project.yml`` text, notes as comments."""
        lines = [
            f"# Converted by `fedra provision` from the FLARE project file {self.file}",
            f"# (api_version {self.api_version}); see docs/migrating-from-flare.md.",
        ]
        lines += [f"#   {note}" for note in self.notes]
        body = yaml.safe_dump(
            plain(self.document), sort_keys=False, default_flow_style=False, width=100
        )
        return "\n".join(lines) + "\n" + body


def is_flare(root: Located | None) -> bool:
    """Whether the document ``root`` is a FLARE project file (its ``api_version`` is 2 or 3)."""
    values = root.value if root is not None else None
    version = values.get("api_version") if isinstance(values, dict) else None
    number = version.value if isinstance(version, Located) else None
    return isinstance(number, int) and not isinstance(number, bool) and number in FLARE_API_VERSIONS


def convert_flare(root: Located, file: str) -> FlareImport:
    """Fedra's project document from the FLARE document ``root`` read from ``file``.

    Raises :class:`~fedra.provision.ProjectError` naming the line of an unknown key, an
    unknown builder or participant type, or a value Fedra cannot map.
    """
    return _Converter(file).convert(root)


class _Converter:
    """One conversion: the notes gathered so far, and errors that name the file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.notes = Notes()

    def fail(self, line: int, key: str, message: str) -> ProjectError:
        return ProjectError(self.file, line, key, message)

    def convert(self, root: Located) -> FlareImport:
        top = root.value
        if not isinstance(top, dict):
            raise self.fail(root.line, "", "expected a mapping of project keys")
        version = top["api_version"]
        assert isinstance(version.value, int)
        for key, value in top.items():
            if key in _TOP_KEYS:
                continue
            if value.shared:
                self.notes.add(value.line, f"{key}: YAML anchors, read where aliases use them")
                continue
            expected = ", ".join(_TOP_KEYS)
            raise self.fail(
                value.line, key, f"unknown key of a FLARE project (expected {expected})"
            )
        builders = read_builders(top.get("builders"), self.file, self.notes)
        document: dict[str, Located] = {"api_version": Located(API_VERSION, version.line)}
        for key in ("name", "description"):
            if key in top:
                document[key] = top[key]
        if builders.docker_image is not None:
            document["docker_image"] = builders.docker_image
        if builders.homomorphic_encryption is not None:
            document["homomorphic_encryption"] = builders.homomorphic_encryption
        participants = top.get("participants")
        if participants is not None:
            document["participants"] = self._participants(participants, builders, version.value)
        notes = tuple(sorted(self.notes.items, key=lambda note: note.line))
        return FlareImport(self.file, version.value, Located(document, root.line), notes)

    # ------------------------------------------------------------------ participants

    def _participants(self, node: Located, builders: Builders, api_version: int) -> Located:
        if not isinstance(node.value, list):
            raise self.fail(node.line, "participants", "expected a list of participants")
        converted: list[Located] = []
        for index, entry in enumerate(node.value):
            item = self._participant(index, entry, builders, api_version)
            if item is not None:
                converted.append(item)
        self._high_availability(converted, builders)
        return Located(converted, node.line)

    def _participant(
        self, index: int, entry: Located, builders: Builders, api_version: int
    ) -> Located | None:
        where = f"participants[{index}]"
        values = entry.value
        if not isinstance(values, dict):
            raise self.fail(entry.line, where, "expected a mapping (name, type, org, ...)")
        kind = values.get("type")
        kind_text = kind.value if kind is not None else None
        if kind_text == "relay":
            assert kind is not None
            raise self.fail(
                kind.line, f"{where}.type", "Fedra has no relays: sites connect to the server"
            )
        if kind_text not in _TYPE_KEYS:
            # Fedra's validation names the line and the expected types.
            return entry
        assert kind is not None
        if kind_text == "overseer":
            if api_version == 2:
                raise self.fail(
                    kind.line, f"{where}.type", "an overseer needs api_version: 3 (FLARE 2.1)"
                )
            if builders.overseer_exists is False:
                self.notes.add(
                    kind.line,
                    f"{where}: the overseer is left out: overseer_agent says overseer_exists: "
                    "false (without an overseer, sites connect to the first server)",
                )
                return None
        result: dict[str, Located] = {}
        own: list[Component] | None = None
        for key, value in values.items():
            if key in ("name", "type", "org") or key in _TYPE_KEYS[kind_text]:
                if key == "components":
                    own = self._components(where, kind_text, value)
                elif key in ("role", "roles"):
                    result["role"] = self._role(where, key, value, values)
                else:
                    result[key] = value
            elif key in _IGNORED_KEYS:
                self.notes.add(value.line, f"{where}.{key}: skipped ({_IGNORED_KEYS[key]})")
            else:
                allowed = ", ".join(("name", "type", "org", *_TYPE_KEYS[kind_text]))
                raise self.fail(
                    value.line,
                    f"{where}.{key}",
                    f"unknown key of a FLARE {kind_text} (expected {allowed})",
                )
        if kind_text == "server":
            self._server_ports(where, entry, result)
            self._job_store(
                where, result, builders.server_components if own is None else own, builders
            )
        return Located(result, entry.line)

    def _role(self, where: str, key: str, value: Located, values: dict[str, Located]) -> Located:
        if "role" in values and "roles" in values:
            raise self.fail(value.line, f"{where}.roles", "expected role or roles, not both")
        names = value.value if key == "roles" else [value]
        if key == "roles" and not isinstance(names, list):
            raise self.fail(
                value.line, f"{where}.roles", "expected a list of roles such as [super]"
            )
        assert isinstance(names, list)
        mapped: list[str] = []
        for name in names:
            text = name.value if isinstance(name, Located) else None
            role = _ROLE_ALIASES.get(text, text) if isinstance(text, str) else None
            if role not in _ROLES:
                line = name.line if isinstance(name, Located) else value.line
                expected = ", ".join((*_ROLE_ALIASES, *_ROLES))
                raise self.fail(
                    line,
                    f"{where}.{key}",
                    f"expected one of {expected}, got {text!r} (FLARE 2.1's own roles of "
                    "AuthPolicyBuilder have no Fedra equivalent: give one of Fedra's)",
                )
            if role not in mapped:
                mapped.append(role)
        if len(mapped) != 1:
            raise self.fail(
                value.line,
                f"{where}.{key}",
                f"expected one role (Fedra gives an admin one), got {mapped}",
            )
        written = names[0].value if key == "role" else names
        if key == "roles" or written != mapped[0]:
            shown = plain(value)
            self.notes.add(value.line, f"{where}.{key}: {shown} is Fedra's role {mapped[0]}")
        return Located(mapped[0], value.line)

    def _server_ports(self, where: str, entry: Located, result: dict[str, Located]) -> None:
        """Fedra's admin port is never the federated-learning port (FLARE 2.5+ shares one)."""
        fed = result.get("fed_learn_port")
        admin = result.get("admin_port")
        fed_port = fed.value if fed is not None else 8002
        if not isinstance(fed_port, int) or (admin is not None and admin.value != fed_port):
            return
        port = 8003 if admin is None and fed_port != 8003 else fed_port + 1
        line = admin.line if admin is not None else entry.line
        why = "not set" if admin is None else "the same as fed_learn_port"
        self.notes.add(
            line, f"{where}.admin_port: {why}; Fedra's admin port is a port of its own: {port}"
        )
        result["admin_port"] = Located(port, line)

    def _components(self, where: str, kind: str, value: Located) -> list[Component]:
        """A participant's own components (FLARE 2.2+); they replace StaticFileBuilder's."""
        own = components_of(value, f"{where}.components", self.file)
        ids = ", ".join(c.id for c in own) or "none"
        why = COMPONENTS_WHY["server" if kind == "server" else "client"]
        self.notes.add(value.line, f"{where}.components: {ids}: skipped ({why})")
        return own

    def _job_store(
        self,
        where: str,
        result: dict[str, Located],
        components: list[Component],
        builders: Builders,
    ) -> None:
        """The folder FLARE kept this server's jobs (or snapshots) in, as its job_store."""
        store = _jobs_folder(components) or builders.snapshot_folder
        if store is None:
            return
        folder, origin = store
        result["job_store"] = Located(
            {"backend": Located("sqlite", folder.line), "path": folder}, folder.line
        )
        self.notes.add(
            folder.line,
            f"{where}.job_store: {{backend: sqlite, path: {folder.value}}} (from {origin})",
        )

    def _high_availability(self, participants: list[Located], builders: Builders) -> None:
        """Put the server ``sp_end_point`` names first; warn when servers cannot fail over."""
        servers = [p for p in participants if _type(p) == "server"]
        if builders.sp_end_point is not None:
            end = builders.sp_end_point
            name, fl_port = _end_point(end, self.file)
            match = [s for s in servers if _get(s, "name") == name]
            if not match:
                raise self.fail(
                    end.line, "sp_end_point", f"names no server of the project: {name!r}"
                )
            server = match[0]
            port = _get(server, "fed_learn_port") or 8002
            if fl_port != port:
                raise self.fail(
                    end.line,
                    "sp_end_point",
                    f"expected the fed_learn_port of server {name} ({port}), got {end.value!r}",
                )
            participants.remove(server)
            first = participants.index(servers[0]) if servers[0] is not server else 0
            participants.insert(first, server)
            self.notes.add(end.line, f"sp_end_point: {name} is the first server, which sites use")
        overseer = any(_type(p) == "overseer" for p in participants)
        stores = [_get(s, "job_store") for s in servers]
        if overseer and len(servers) > 1 and (None in stores or len(set(map(str, stores))) > 1):
            self.notes.add(
                servers[0].line,
                "warning: the servers share no job_store, so they cannot fail over: give every "
                "server the same job_store (docs/ha.md)",
            )


def _jobs_folder(components: list[Component]) -> tuple[Located, str] | None:
    """The folder a ``job_manager`` component stores jobs in (``uri_root``), if absolute."""
    for component in components:
        uri = component.args.get("uri_root") if component.id == "job_manager" else None
        if uri is not None and isinstance(uri.value, str) and uri.value.startswith("/"):
            return uri, "job_manager's uri_root"
    return None


def _type(participant: Located) -> object:
    return _get(participant, "type")


def _get(participant: Located, key: str) -> object:
    values = participant.value
    found = values.get(key) if isinstance(values, dict) else None
    return plain(found) if isinstance(found, Located) else None


def _end_point(node: Located, file: str) -> tuple[str, int]:
    """``SERVER_NAME:FL_PORT:ADMIN_PORT`` of ``sp_end_point``."""
    parts = node.value.split(":") if isinstance(node.value, str) else []
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ProjectError(
            file,
            node.line,
            "sp_end_point",
            f"expected SERVER_NAME:FL_PORT:ADMIN_PORT, got {node.value!r}",
        )
    return parts[0], int(parts[1])
