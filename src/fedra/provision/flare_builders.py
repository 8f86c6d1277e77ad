"""The ``builders:`` of a FLARE project file: what Fedra takes from each, and what it skips.

FLARE runs each builder by importing its ``path``; Fedra never imports anything named in a
file. It knows the builders FLARE ships (``nvflare.lighter.impl.*``):

- mapped: ``static_file.StaticFileBuilder`` (``docker_image``, ``overseer_agent``,
  ``snapshot_persistor``, ``components``), ``he.HEBuilder`` (``homomorphic_encryption``),
  ``docker.DockerBuilder`` (``docker_image``);
- skipped, with a note saying why: the builders whose work Fedra does itself (workspace,
  template, certificates, signatures, zips) or has no counterpart for (auth policy, Helm).

Any other builder is refused with its line: Fedra cannot know what it would have written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedra.provision.errors import ProjectError
from fedra.provision.yamlfile import Located

_IMPL = "nvflare.lighter.impl."
#: Builders whose work Fedra does itself, or has no counterpart for: skipped, with why.
SKIPPED_BUILDERS = {
    "workspace.WorkspaceBuilder": "Fedra lays out workspace/<project>/prod_NN itself",
    "template.TemplateBuilder": "Fedra writes its kits' scripts and configs itself",
    "cert.CertBuilder": "Fedra issues every certificate from the project's CA, kept in state/",
    "signature.SignatureBuilder": "Fedra signs every kit's startup/ into signature.json",
    "workspace.DistributionBuilder": "Fedra zips every kit, without a zip password",
    "auth_policy.AuthPolicyBuilder": (
        "Fedra's rights are each kit's local/authorization.json, by role: "
        "project_admin, org_admin, lead, member"
    ),
    "helm_chart.HelmChartBuilder": "Fedra writes no Helm chart",
}
#: Builders Fedra takes settings from.
MAPPED_BUILDERS = ("static_file.StaticFileBuilder", "he.HEBuilder", "docker.DockerBuilder")
#: The overseer agents of FLARE (``nvflare.ha.*``): HTTP (an overseer) or dummy (none).
_AGENTS = ("HttpOverseerAgent", "DummyOverseerAgent")
#: StaticFileBuilder arguments Fedra has no use for, and why.
_STATIC_SKIPPED = {
    "config_folder": "Fedra's kits keep their settings in startup/ and local/",
    "app_validator": "Fedra validates every job itself (fedra job validate)",
    "download_job_url": "Fedra downloads jobs over the admin connection",
    "enable_byoc": "each participant's own enable_byoc is used",
}


#: Why FLARE's components are skipped, by side.
COMPONENTS_WHY = {
    "server": "Fedra's server is built in; a job_manager's uri_root becomes its job_store",
    "client": "Fedra's site is built in; its resources are local/resources.json",
}


@dataclass(frozen=True)
class FlareNote:
    """Something the conversion mapped, skipped or warns about, at a line of the FLARE file."""

    line: int
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}"


@dataclass
class Notes:
    """The notes of one conversion, in the order they were made."""

    items: list[FlareNote] = field(default_factory=list)

    def add(self, line: int, text: str) -> None:
        """Note ``text`` at ``line``."""
        self.items.append(FlareNote(line, text))


@dataclass(frozen=True)
class Component:
    """A FLARE component (``id``, ``path``, ``args``): only its id and arguments are read."""

    id: str
    args: dict[str, Located]
    line: int


@dataclass
class Builders:
    """What the builders say that Fedra's project file has a place for."""

    line: int = 1
    docker_image: Located | None = None
    homomorphic_encryption: Located | None = None
    #: ``overseer_agent.overseer_exists`` (None: no overseer_agent).
    overseer_exists: bool | None = None
    sp_end_point: Located | None = None
    server_components: list[Component] = field(default_factory=list)
    #: A storage folder of the ``snapshot_persistor``, and where it was found.
    snapshot_folder: tuple[Located, str] | None = None


def read_builders(node: Located | None, file: str, notes: Notes) -> Builders:
    """Read the ``builders:`` list ``node``; skipped builders become notes in ``notes``."""
    builders = Builders(line=node.line if node is not None else 1)
    if node is None:
        return builders
    if not isinstance(node.value, list):
        raise ProjectError(file, node.line, "builders", "expected a list of builders")
    for index, entry in enumerate(node.value):
        where = f"builders[{index}]"
        values = _mapping(entry, where, file, ("path", "args"))
        path = values.get("path")
        if path is None or not isinstance(path.value, str):
            raise ProjectError(file, entry.line, f"{where}.path", "expected a builder's class path")
        name = path.value.removeprefix(_IMPL) if path.value.startswith(_IMPL) else None
        args = values.get("args")
        if name in SKIPPED_BUILDERS:
            notes.add(path.line, f"{path.value}: skipped ({SKIPPED_BUILDERS[name]})")
        elif name == "static_file.StaticFileBuilder":
            _static_file(args, f"{where}.args", file, notes, builders)
        elif name == "he.HEBuilder":
            builders.homomorphic_encryption = Located(True, path.line)
            notes.add(
                path.line,
                f"{path.value}: homomorphic_encryption: true (Fedra's CKKS parameters; "
                "the builder's args are not used)",
            )
        elif name == "docker.DockerBuilder":
            _docker(args, f"{where}.args", file, notes, builders)
            notes.add(path.line, f"{path.value}: docker.sh, Dockerfile, requirements.txt per kit")
        else:
            raise ProjectError(
                file,
                path.line,
                f"{where}.path",
                f"unknown builder {path.value!r}: Fedra runs no builder code; it knows FLARE's "
                "own (docs/migrating-from-flare.md lists them)",
            )
    return builders


def components_of(node: Located, where: str, file: str) -> list[Component]:
    """Components as FLARE writes them: a mapping ``id: {path, args}`` (2.2+) or a list of
    ``{id, path, args}`` (2.1's StaticFileBuilder)."""
    found: list[Component] = []
    if isinstance(node.value, dict):
        for key, value in node.value.items():
            entry = _mapping(value, f"{where}.{key}", file, ("path", "args", "id"))
            found.append(Component(key, _args(entry, f"{where}.{key}", file), value.line))
        return found
    if not isinstance(node.value, list):
        raise ProjectError(file, node.line, where, "expected components (a mapping or a list)")
    for index, value in enumerate(node.value):
        entry = _mapping(value, f"{where}[{index}]", file, ("path", "args", "id"))
        ident = entry.get("id")
        if ident is None or not isinstance(ident.value, str):
            raise ProjectError(file, value.line, f"{where}[{index}].id", "expected a component id")
        found.append(Component(ident.value, _args(entry, f"{where}[{index}]", file), value.line))
    return found


def _static_file(
    node: Located | None, where: str, file: str, notes: Notes, builders: Builders
) -> None:
    keys = (
        *_STATIC_SKIPPED,
        "docker_image",
        "scheme",
        "overseer_agent",
        "snapshot_persistor",
        "components",
    )
    args = _mapping(node, where, file, keys) if node is not None else {}
    for key, value in args.items():
        if key in _STATIC_SKIPPED:
            notes.add(value.line, f"{key}: skipped ({_STATIC_SKIPPED[key]})")
        elif key == "docker_image":
            builders.docker_image = value
            notes.add(value.line, f"docker_image: {value.value} (docker.sh in every kit)")
        elif key == "scheme":
            if value.value != "grpc":
                raise ProjectError(file, value.line, f"{where}.scheme", "expected grpc")
            notes.add(value.line, "scheme: grpc is what Fedra speaks")
        elif key == "overseer_agent":
            _overseer_agent(value, f"{where}.overseer_agent", file, notes, builders)
        elif key == "snapshot_persistor":
            folder = _storage_folder(value)
            builders.snapshot_folder = (folder, "snapshot_persistor") if folder else None
            notes.add(value.line, "snapshot_persistor: Fedra keeps snapshots in the job store")
        else:
            _static_components(value, f"{where}.components", file, notes, builders)


def _static_components(
    node: Located, where: str, file: str, notes: Notes, builders: Builders
) -> None:
    sides = _mapping(node, where, file, ("server", "client"))
    for side, value in sides.items():
        found = components_of(value, f"{where}.{side}", file)
        if side == "server":
            builders.server_components = found
        ids = ", ".join(c.id for c in found) or "none"
        why = COMPONENTS_WHY[side]
        notes.add(value.line, f"components.{side}: {ids}: skipped ({why})")


def _overseer_agent(node: Located, where: str, file: str, notes: Notes, builders: Builders) -> None:
    agent = _mapping(node, where, file, ("path", "overseer_exists", "args"))
    path = agent.get("path")
    name = path.value.rpartition(".")[2] if path is not None and isinstance(path.value, str) else ""
    if path is None or not str(path.value).startswith("nvflare.ha.") or name not in _AGENTS:
        line = path.line if path is not None else node.line
        raise ProjectError(
            file, line, f"{where}.path", f"expected nvflare.ha's {' or '.join(_AGENTS)}"
        )
    exists = agent.get("overseer_exists")
    if exists is not None and not isinstance(exists.value, bool):
        raise ProjectError(file, exists.line, f"{where}.overseer_exists", "expected true or false")
    builders.overseer_exists = bool(exists.value) if exists is not None else True
    args = agent.get("args")
    arg_values = _mapping(args, f"{where}.args", file, None) if args is not None else {}
    if builders.overseer_exists:
        notes.add(node.line, "overseer_agent: the overseer participant runs high availability")
        if args is not None:
            notes.add(args.line, "overseer_agent.args: skipped (overseer_exists: true)")
        return
    end = arg_values.get("sp_end_point")
    if end is None:
        raise ProjectError(
            file, node.line, f"{where}.args.sp_end_point", "expected SERVER_NAME:FL_PORT:ADMIN_PORT"
        )
    builders.sp_end_point = end
    for key, value in arg_values.items():
        if key != "sp_end_point":
            notes.add(value.line, f"overseer_agent.args.{key}: skipped")


def _docker(node: Located | None, where: str, file: str, notes: Notes, builders: Builders) -> None:
    args = _mapping(node, where, file, None) if node is not None else {}
    for key, value in args.items():
        if key == "docker_image":
            builders.docker_image = value
            notes.add(value.line, f"docker_image: {value.value} (docker.sh in every kit)")
        else:
            notes.add(value.line, f"{key}: skipped (Fedra's Dockerfile: see docs/provisioning.md)")


def _storage_folder(node: Located) -> Located | None:
    """The absolute ``args.storage.args.root_dir`` of a snapshot persistor, if it names one."""
    found: Located | None = node
    for key in ("args", "storage", "args", "root_dir"):
        values = found.value if found is not None else None
        found = values.get(key) if isinstance(values, dict) else None
    if found is None or not isinstance(found.value, str) or not found.value.startswith("/"):
        return None
    return found


def _args(entry: dict[str, Located], where: str, file: str) -> dict[str, Located]:
    args = entry.get("args")
    return _mapping(args, f"{where}.args", file, None) if args is not None else {}


def _mapping(
    node: Located | None, where: str, file: str, keys: tuple[str, ...] | None
) -> dict[str, Located]:
    """``node``'s mapping; with ``keys``, any other key is refused with its line."""
    if node is None or node.value is None:
        return {}
    if not isinstance(node.value, dict):
        raise ProjectError(file, node.line, where, "expected a mapping")
    if keys is not None:
        for key, value in node.value.items():
            if key not in keys:
                raise ProjectError(
                    file, value.line, f"{where}.{key}", f"unknown key (expected {', '.join(keys)})"
                )
    return dict(node.value)
