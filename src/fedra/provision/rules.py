"""The rules a project must follow beyond the shape of each participant.

- participant names are unique (compared without case: they are host and folder names);
- there is at least one server, and at most one overseer;
- servers and the overseer that share a host use distinct ports (the name of a server is its
  host unless ``host`` says otherwise; ``localhost``, ``127.0.0.1`` and ``::1`` are one host);
- a revoked name is no participant's (a revoked participant is out for good: it comes back
  only under a new name).
"""

from __future__ import annotations

from collections.abc import Sequence

from fedra.provision.errors import ProjectError
from fedra.provision.project import Overseer, Project, Server
from fedra.provision.yamlfile import Located

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def host_key(address: str) -> str:
    """A key equal for two addresses that name the same host as far as the file can tell."""
    address = address.lower().rstrip(".")
    return "localhost" if address in _LOOPBACK else address


def check_rules(project: Project, file: str, nodes: Sequence[Located]) -> None:
    """Raise :class:`ProjectError` for the first rule ``project`` breaks.

    ``nodes[i]`` is the YAML mapping ``project.participants[i]`` was read from (for lines).
    """
    lines = [node.line for node in nodes]
    first: dict[str, int] = {}
    for index, participant in enumerate(project.participants):
        key = participant.name.lower()
        if key in first:
            other = first[key]
            raise ProjectError(
                file,
                _line(nodes[index], "name"),
                f"participants[{index}].name",
                f"expected a unique name, but {participant.name!r} is already used by "
                f"participants[{other}] (line {_line(nodes[other], 'name')})",
            )
        first[key] = index
    if not project.servers:
        raise ProjectError(
            file, lines[0] if lines else None, "participants", "expected at least one server"
        )
    overseers = [i for i, p in enumerate(project.participants) if isinstance(p, Overseer)]
    if len(overseers) > 1:
        index = overseers[1]
        raise ProjectError(
            file,
            _line(nodes[index], "type"),
            f"participants[{index}].type",
            "expected at most one overseer",
        )
    _check_ports(project, file, nodes)
    check_revoked(project, file, nodes)


def check_revoked(project: Project, file: str, nodes: Sequence[Located]) -> None:
    """Raise :class:`ProjectError` when a participant's name is revoked."""
    revoked = {name.lower() for name in project.revoked}
    for index, participant in enumerate(project.participants):
        if participant.name.lower() in revoked:
            line = _line(nodes[index], "name") if index < len(nodes) else None
            raise ProjectError(
                file,
                line,
                f"participants[{index}].name",
                f"{participant.name!r} is revoked (revoked: here or in an earlier "
                "provisioning's state/revoked.json): a revoked participant comes back only "
                "under a new name",
            )


def _line(node: Located, key: str) -> int:
    """The line of ``key`` in the mapping ``node``, or of the mapping when the key is absent."""
    values = node.value
    if isinstance(values, dict) and isinstance(found := values.get(key), Located):
        return found.line
    return node.line


def _check_ports(project: Project, file: str, nodes: Sequence[Located]) -> None:
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
                    _line(nodes[index], key),
                    f"participants[{index}].{key}",
                    f"expected a port not used on host {participant.address!r}, but {port} is "
                    f"the {other_key} of {name!r} (participants[{other}], "
                    f"line {_line(nodes[other], other_key)})",
                )
            used[(host, port)] = (index, key)
