"""Load and validate ``project.yml`` into a :class:`~fedra.provision.project.Project`.

Every error names the file, the line and the key path, and says what was expected, e.g.
``project.yml:14: participants[2].fed_learn_port: expected an integer 1-65535, got 'abc'``.
Unknown keys are errors (a misspelt option must not be ignored silently).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fedra.core import ConfigError
from fedra.pki import ADMIN_ROLES, Identity
from fedra.provision.errors import ProjectError
from fedra.provision.project import (
    API_VERSION,
    DEFAULT_ADMIN_PORT,
    DEFAULT_API_ROOT,
    DEFAULT_FED_LEARN_PORT,
    DEFAULT_OVERSEER_PORT,
    PARTICIPANT_TYPES,
    Admin,
    Client,
    Overseer,
    Participant,
    Project,
    Server,
)
from fedra.provision.rules import check_rules
from fedra.provision.yamlfile import Located, parse_yaml
from fedra.runtime.peers import revoked_entry
from fedra.store import StoreConfig

T = TypeVar("T")

_PROJECT_KEYS = (
    "api_version",
    "name",
    "description",
    "participants",
    "docker_image",
    "homomorphic_encryption",
    "revoked",
)
_COMMON = ("name", "type", "org")
_KEYS: dict[str, tuple[str, ...]] = {
    "overseer": (*_COMMON, "protocol", "api_root", "port", "host"),
    "server": (*_COMMON, "fed_learn_port", "admin_port", "enable_byoc", "host", "job_store"),
    "client": (*_COMMON, "enable_byoc"),
    "admin": (*_COMMON, "role"),
}
_MAX_NAME = 64
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_API_ROOT = re.compile(r"/[A-Za-z0-9._~/-]*")


def load_project(path: str | Path) -> Project:
    """Read and validate the project file at ``path``."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ProjectError(file, None, "", "file not found") from err
    except UnicodeDecodeError as err:
        raise ProjectError(file, None, "", "expected UTF-8 text") from err
    except OSError as err:
        raise ProjectError(file, None, "", f"cannot read: {err.strerror or err}") from err
    return parse_project(text, file, source=path)


def parse_project(text: str, file: str = "project.yml", *, source: Path | None = None) -> Project:
    """Validate the YAML ``text`` of a project file; errors name ``file``."""
    root = parse_yaml(text, file)
    if root is None:
        raise ProjectError(file, None, "", "the file is empty; expected a project description")
    f = _Fields(file, root, "", "the project file")
    f.only(_PROJECT_KEYS)
    version = f.get("api_version", _integer(1, 1 << 30))
    if version != API_VERSION:
        f.fail("api_version", f"expected {API_VERSION}, got {version!r}")
    name = f.get("name", _pattern(_PROJECT_NAME, "a project name (letters, digits, . _ -)"))
    description = f.get("description", _string, default="")
    image = f.optional("docker_image", _pattern(_IMAGE, "a docker image name such as repo:tag"))
    he = f.get("homomorphic_encryption", _boolean, default=False)
    participants = _participants(file, f.located("participants"))
    revoked = f.optional("revoked", _revoked) or ()
    project = Project(
        name=name,
        participants=tuple(p for p, _ in participants),
        description=description,
        docker_image=image,
        api_version=version,
        source=source,
        homomorphic_encryption=he,
        revoked=revoked,
    )
    check_rules(project, file, [loc for _, loc in participants])
    return project


def _participants(file: str, node: Located) -> list[tuple[Participant, Located]]:
    if not isinstance(node.value, list) or not node.value:
        raise ProjectError(file, node.line, "participants", "expected a non-empty list")
    found: list[tuple[Participant, Located]] = []
    for index, item in enumerate(node.value):
        key = f"participants[{index}]"
        if not isinstance(item.value, dict):
            raise ProjectError(file, item.line, key, f"expected a mapping, got {item.value!r}")
        found.append((_participant(_Fields(file, item, key, "a participant")), item))
    return found


def _participant(f: _Fields) -> Participant:
    kind = f.get("type", _choice(PARTICIPANT_TYPES))
    f.only(_KEYS[kind], f"an {kind}" if kind[0] in "aeiou" else f"a {kind}")
    name = f.get("name", _name_for(kind))
    org = f.get("org", _org)
    if kind == "overseer":
        protocol = f.get("protocol", _choice(("https",)), default="https")
        api_root = f.get(
            "api_root", _pattern(_API_ROOT, "a URL path starting with /"), default=DEFAULT_API_ROOT
        )
        port = f.get("port", _PORT, default=DEFAULT_OVERSEER_PORT)
        host = f.optional("host", _host)
        return Overseer(name, org, protocol, api_root, port, host)
    if kind == "server":
        fed_port = f.get("fed_learn_port", _PORT, default=DEFAULT_FED_LEARN_PORT)
        admin_port = f.get("admin_port", _PORT, default=DEFAULT_ADMIN_PORT)
        if fed_port == admin_port:
            f.fail("admin_port", f"expected a port other than fed_learn_port ({fed_port})")
        byoc = f.get("enable_byoc", _boolean, default=False)
        store = f.optional("job_store", _job_store)
        return Server(name, org, fed_port, admin_port, byoc, f.optional("host", _host), store)
    if kind == "client":
        return Client(name, org, f.get("enable_byoc", _boolean, default=False))
    return Admin(name, org, f.get("role", _choice(tuple(sorted(ADMIN_ROLES)))))


class _Fields:
    """The keys of one YAML mapping, checked one by one; errors carry the key path."""

    def __init__(self, file: str, node: Located, path: str, what: str) -> None:
        if not isinstance(node.value, dict):
            raise ProjectError(file, node.line, path, f"expected a mapping for {what}")
        self.file = file
        self.node = node
        self.values: dict[str, Located] = node.value
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> None:
        line = self.values[name].line if name in self.values else self.node.line
        raise ProjectError(self.file, line, self.key(name), message)

    def only(self, allowed: tuple[str, ...], what: str = "") -> None:
        for name, loc in self.values.items():
            if name not in allowed:
                expected = ", ".join(sorted(allowed))
                owner = f" for {what}" if what else ""
                raise ProjectError(
                    self.file,
                    loc.line,
                    self.key(name),
                    f"unknown key{owner} (expected one of: {expected})",
                )

    def located(self, name: str) -> Located:
        if name not in self.values or self.values[name].value is None:
            raise ProjectError(
                self.file, self._line(name), self.key(name), "missing; this key is required"
            )
        return self.values[name]

    def get(self, name: str, check: Callable[[Any], T], default: T | None = None) -> T:
        if default is not None and (name not in self.values or self.values[name].value is None):
            return default
        loc = self.located(name)
        try:
            return check(loc.value)
        except _Invalid as err:
            raise ProjectError(
                self.file, loc.line, self.key(name), f"expected {err}, got {loc.value!r}"
            ) from None

    def optional(self, name: str, check: Callable[[Any], T]) -> T | None:
        if name not in self.values or self.values[name].value is None:
            return None
        return self.get(name, check)

    def _line(self, name: str) -> int:
        return self.values[name].line if name in self.values else self.node.line


class _Invalid(Exception):
    """A value does not match; the message says what was expected."""


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"an integer {low}-{high}")
        return value

    return check


_PORT = _integer(1, 65535)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("a string")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise _Invalid(f"one of {', '.join(options)}")
        return str(value)

    return check


def _pattern(regex: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise _Invalid(what)
        return value

    return check


def _org(value: Any) -> str:
    what = f"an organisation name (1-{_MAX_NAME} characters, no control characters)"
    if not isinstance(value, str) or value != value.strip():
        raise _Invalid(what)
    try:
        Identity("x", value, "client")
    except ConfigError:
        raise _Invalid(what) from None
    return value


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return True
    labels = value.rstrip(".").split(".")
    return len(value) <= _MAX_NAME and all(_HOST_LABEL.fullmatch(label) for label in labels)


def _plain(value: Any) -> Any:
    """A parsed YAML value without its line numbers."""
    if isinstance(value, Located):
        return _plain(value.value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _job_store(value: Any) -> dict[str, Any]:
    """A server's job store: {backend: sqlite|postgres, path, dsn, schema, timeout}."""
    plain = _plain(value)
    if not isinstance(plain, dict):
        raise _Invalid("a mapping such as {backend: sqlite, path: /shared/fedra-store}")
    try:
        StoreConfig.parse(plain, Path("store"))
    except ConfigError as exc:
        raise _Invalid(f"a valid job store ({exc})") from exc
    return plain


def _revoked(value: Any) -> tuple[str, ...]:
    """Revoked participants (names of sites, servers, the overseer, admins' e-mails) and
    certificates (``sha256:`` fingerprints, see :func:`fedra.runtime.peers.revoked_entry`)."""
    what = "a list of participant names and sha256:<64 hex> certificate fingerprints"
    if not isinstance(value, list):
        raise _Invalid(what)
    names = [_plain(v) for v in value]
    valid = all(
        isinstance(n, str) and 0 < len(n) <= _MAX_NAME and n.isprintable() and n == n.strip()
        for n in names
        if not (isinstance(n, str) and n.lower().startswith("sha256:"))
    )
    entries = [revoked_entry(n) if isinstance(n, str) else None for n in names]
    if not valid or not all(entries):
        raise _Invalid(what)
    return tuple(dict.fromkeys(str(e) for e in entries))


def _host(value: Any) -> str:
    if not isinstance(value, str) or not _is_host(value):
        raise _Invalid("a host name or IP address")
    return value


def _name_for(kind: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if kind in ("server", "overseer"):
            if not isinstance(value, str) or not _is_host(value):
                raise _Invalid(f"a host name (the name everyone connects to, {_MAX_NAME} max)")
        elif kind == "admin":
            if not isinstance(value, str) or len(value) > _MAX_NAME or not _EMAIL.fullmatch(value):
                raise _Invalid("an e-mail address such as admin@example.org")
        elif not isinstance(value, str) or not _SITE_NAME.fullmatch(value) or ".." in value:
            raise _Invalid(f"a site name (letters, digits, . _ -; {_MAX_NAME} max)")
        return value

    return check
