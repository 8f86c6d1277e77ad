"""Validate ``project.yml`` into a :class:`~fedra.provision.project.Project`.

The YAML is read safely with its line numbers (:mod:`fedra.provision.yamlfile`), converted to
the declared schema :class:`~fedra.provision.project.ProjectFile` with msgspec, and checked
against the rules between participants (:mod:`fedra.provision.rules`). Every error names the
file, the line and the key path, and says what was expected, e.g.
``project.yml:14: participants[2].fed_learn_port: expected an integer 1-65535, got 'abc'``.
Unknown keys are errors (a misspelt option must not be ignored silently).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import msgspec

from fedra.core import ConfigError
from fedra.core.jsonfile import Key, Problem, convert
from fedra.jobstore import StoreConfig
from fedra.provision.errors import ProjectError
from fedra.provision.project import Overseer, Project, ProjectFile, Server
from fedra.provision.rules import check_rules
from fedra.provision.yamlfile import Located, line_at, parse_yaml, plain
from fedra.runtime.peers import revoked_entry

_MAX_NAME = 64


def read_text(path: str | Path) -> str:
    """The text of the project file at ``path``; errors name the file."""
    file = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ProjectError(file, None, "", "file not found") from err
    except UnicodeDecodeError as err:
        raise ProjectError(file, None, "", "expected UTF-8 text") from err
    except OSError as err:
        raise ProjectError(file, None, "", f"cannot read: {err.strerror or err}") from err


def parse_project(text: str, file: str = "project.yml", *, source: Path | None = None) -> Project:
    """Validate the YAML ``text`` of a project file; errors name ``file``."""
    root = parse_yaml(text, file)
    if root is None:
        raise ProjectError(file, None, "", "the file is empty; expected a project description")
    return project_from_tree(root, file, source=source)


def project_from_tree(root: Located, file: str, *, source: Path | None = None) -> Project:
    """Validate a project file's document ``root``; errors name ``file`` and its lines.

    ``root`` may also be built by a converter (:mod:`fedra.provision.flare`), with the lines of
    the file it converted, so that errors point into that file.
    """

    def fail(problem: Problem) -> ProjectError:
        return ProjectError(file, line_at(root, problem.path), problem.key, problem.message)

    spec = convert(plain(root), ProjectFile, fail)
    _check_values(spec, fail)
    project = Project(
        name=spec.name,
        participants=tuple(spec.participants),
        description=spec.description,
        docker_image=spec.docker_image,
        api_version=spec.api_version,
        source=source,
        homomorphic_encryption=spec.homomorphic_encryption,
        revoked=tuple(dict.fromkeys(str(revoked_entry(n)) for n in spec.revoked)),
    )
    check_rules(project, file, root)
    return project


def _check_values(spec: ProjectFile, fail: Callable[[Problem], ProjectError]) -> None:
    """What the schema's types cannot say: IPv6 addresses, distinct ports, job stores, and
    revoked entries."""

    def bad(path: tuple[Key, ...], expected: str, got: object) -> ProjectError:
        return fail(Problem("invalid", path, expected, got))

    for index, p in enumerate(spec.participants):
        for key in ("name", "host"):
            value = getattr(p, key, None)
            if isinstance(p, Server | Overseer) and value and ":" in value and not _is_ip(value):
                raise bad(("participants", index, key), "a host name or IP address", value)
        if isinstance(p, Server) and p.fed_learn_port == p.admin_port:
            expected = f"a port other than fed_learn_port ({p.fed_learn_port})"
            raise bad(("participants", index, "admin_port"), expected, p.admin_port)
        if isinstance(p, Server) and p.job_store is not None:
            try:
                StoreConfig.parse(msgspec.to_builtins(p.job_store), Path("store"))
            except ConfigError as exc:
                store = ("participants", index, "job_store")
                got = msgspec.to_builtins(p.job_store)
                raise bad(store, f"a valid job store ({exc})", got) from None
    for index, name in enumerate(spec.revoked):
        fingerprint = name.lower().startswith("sha256:")
        named = len(name) <= _MAX_NAME and name.isprintable() and name == name.strip()
        if revoked_entry(name) is None or not (fingerprint or named):
            what = "a participant name or a sha256:<64 hex> certificate fingerprint"
            raise bad(("revoked", index), what, name)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
