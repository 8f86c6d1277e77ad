"""The rules a project must follow beyond the shape of each participant.

- participant names are unique (compared without case: they are host and folder names);
- there is at least one server, and at most one overseer;
- servers and the overseer that share a host use distinct ports (the name of a server is its
  host unless ``host`` says otherwise; ``localhost``, ``127.0.0.1`` and ``::1`` are one host);
- a revoked name is no participant's (a revoked participant is out for good: it comes back
  only under a new name).
"""

from __future__ import annotations

from fedra.provision.errors import ProjectError
from fedra.provision.project import Overseer, Project, Server
from fedra.provision.yamlfile import Located, line_at

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def host_key(address: str) -> str:
    """A key equal for two addresses that name the same host as far as the file can tell."""
    address = address.lower().rstrip(".")
    return "localhost" if address in _LOOPBACK else address


def check_rules(project: Project, file: str, root: Located) -> None:
    """Raise :class:`ProjectError` for the first rule ``project`` breaks.

    ``root`` is the YAML document ``project`` was read from (for lines).
    """
    first: dict[str, int] = {}
    for index, participant in enumerate(project.participants):
        key = participant.name.lower()
        if key in first:
            other = first[key]
            raise ProjectError(
                file,
                _line(root, index, "name"),
                f"participants[{index}].name",
                f"expected a unique name, but {participant.name!r} is already used by "
                f"participants[{other}] (line {_line(root, other, 'name')})",
            )
        first[key] = index
    if not project.servers:
        raise ProjectError(file, _line(root, 0), "participants", "expected at least one server")
    overseers = [i for i, p in enumerate(project.participants) if isinstance(p, Overseer)]
    if len(overseers) > 1:
        index = overseers[1]
        raise ProjectError(
            file,
            _line(root, index, "type"),
            f"participants[{index}].type",
            "expected at most one overseer",
        )
    _check_ports(project, file, root)
    check_revoked(project, file, root)


def check_revoked(project: Project, file: str, root: Located | None = None) -> None:
    """Raise :class:`ProjectError` when a participant's name is revoked (``root``: the YAML
    document, for lines)."""
    revoked = {name.lower() for name in project.revoked}
    for index, participant in enumerate(project.participants):
        if participant.name.lower() in revoked:
            line = _line(root, index, "name") if root is not None else None
            raise ProjectError(
                file,
                line,
                f"participants[{index}].name",
                f"{participant.name!r} is revoked (revoked: here or in an earlier "
                "provisioning's state/revoked.json): a revoked participant comes back only "
                "under a new name",
            )


def _line(root: Located, index: int, *key: str) -> int:
    """The line of ``participants[index].key`` (of the participant when the key is absent)."""
    return line_at(root, ("participants", index, *key))


def _check_ports(project: Project, file: str, root: Located) -> None:
    used: dict[tuple[str, int], tuple[int, str]] = {}
    for index, participant in enumerate(project.participants):
        if isinstance(participant, Server):
            ports = [
                ("fed_learn_port", participant.fed_learn_port),
                ("admin_port", participant.admin_port),
            ]
        elif isinstance(participant, Overseer):
            ports = [("port", participant.port)]
        else:
            continue
        host = host_key(participant.address)
        for key, port in ports:
            if (host, port) in used:
                other, other_key = used[(host, port)]
                name = project.participants[other].name
                raise ProjectError(
                    file,
                    _line(root, index, key),
                    f"participants[{index}].{key}",
                    f"expected a port not used on host {participant.address!r}, but {port} is "
                    f"the {other_key} of {name!r} (participants[{other}], "
                    f"line {_line(root, other, other_key)})",
                )
            used[(host, port)] = (index, key)
