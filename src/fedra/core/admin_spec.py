"""Every admin command, declared once: its arguments, the right it needs, what it acts on.

The server's admin service dispatches only the commands declared here, validates each
request's ``args`` against the declaration before anything else, authorizes on exactly the
validated arguments and hands exactly those to the handler. The console table
(:mod:`fedra.admin.commands`) and docs/admin-commands.md are checked against this table by a
test, so the right a command needs cannot drift between the server, the console and the docs.

Rights (each role gets a scope per right in the server's ``local/authorization.json``):

- ``submit_job``: submit or clone jobs;
- ``manage_job``: abort or delete a job;
- ``download_job``: download a job's files (and ``cat`` a job file that is not a log);
- ``view``: see jobs, sites, logs;
- ``operate``: remove, shut down or restart sites and the server.

Objects (``acts_on``): ``job`` (by ``job_id``), ``sites`` (by name), ``participant`` (the
server or one site), ``file`` (a participant's log, or a file of one job: see
:mod:`fedra.runtime.confined`), ``nothing`` (the command lists what the scope lets it see).

Pure: no I/O, no imports beyond the standard library and core errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fedra.core.errors import ConfigError

Right = Literal["submit_job", "manage_job", "download_job", "view", "operate"]
Scope = Literal["none", "own", "own_org", "any"]
ArgType = Literal["str", "int", "bool", "job_id", "names"]
ActsOn = Literal["job", "sites", "participant", "file", "nothing"]
ServedBy = Literal["server", "overseer", "console"]

#: Every right, in the order the docs list them.
RIGHTS: tuple[Right, ...] = ("submit_job", "manage_job", "download_job", "view", "operate")
#: Every scope, from the narrowest.
SCOPES: tuple[Scope, ...] = ("none", "own", "own_org", "any")
#: What a job id looks like (the store makes uuid hex ids).
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Longest string argument, unless the argument says otherwise.
MAX_STR = 512
#: Most site names in one ``names`` argument.
MAX_NAMES = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")

#: ``check_status`` targets.
STATUS_TARGETS = ("server", "client")
#: ``shutdown`` / ``restart`` targets.
SYSTEM_TARGETS = ("client", "server", "all")


class BadArguments(ConfigError):
    """A request's arguments do not match the command's declaration (one line)."""


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a command, as it travels in the request's ``args`` object."""

    name: str
    type: ArgType
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    max_len: int = MAX_STR
    #: Whether the string may hold line breaks (a PEM certificate); other control
    #: characters are refused in every string.
    multiline: bool = False


@dataclass(frozen=True)
class AdminCommand:
    """One admin command: who serves it, the right it needs, what it acts on, its arguments.

    ``right`` is checked with the admin's scope on the object the command acts on (for
    ``nothing``: a scope other than ``none``; ``operate`` with nothing needs ``any``).
    ``object_right``, when set, is the right checked on the object instead, while ``right``
    is then checked as a right with no object: ``clone_job`` needs ``submit_job`` and ``view``
    on the original job.
    """

    name: str
    right: Right
    acts_on: ActsOn
    args: tuple[ArgSpec, ...] = ()
    served_by: ServedBy = "server"
    object_right: Right | None = None

    @property
    def arg_names(self) -> tuple[str, ...]:
        """The names of the declared arguments."""
        return tuple(a.name for a in self.args)


_JOB = ArgSpec("job_id", "job_id", required=True)
_SYSTEM = (
    ArgSpec("target", "str", required=True, choices=SYSTEM_TARGETS),
    ArgSpec("names", "names"),
)

ADMIN_COMMANDS: tuple[AdminCommand, ...] = (
    AdminCommand(
        "check_status",
        "view",
        "nothing",
        (ArgSpec("target", "str", default="server", choices=STATUS_TARGETS),),
    ),
    AdminCommand(
        "submit_job",
        "submit_job",
        "nothing",
        (
            ArgSpec("signature", "str", max_len=4096),
            ArgSpec("certificate", "str", max_len=16384, multiline=True),
        ),
    ),
    AdminCommand(
        "list_jobs",
        "view",
        "nothing",
        (ArgSpec("detailed", "bool", default=False), ArgSpec("prefix", "str", max_len=128)),
    ),
    AdminCommand("get_job", "view", "job", (_JOB,)),
    AdminCommand("abort_job", "manage_job", "job", (_JOB,)),
    AdminCommand("clone_job", "submit_job", "job", (_JOB,), object_right="view"),
    AdminCommand("delete_job", "manage_job", "job", (_JOB,)),
    AdminCommand("download_job", "download_job", "job", (_JOB,)),
    AdminCommand("show_stats", "view", "job", (_JOB,)),
    AdminCommand("show_errors", "view", "job", (_JOB,)),
    AdminCommand(
        "tail",
        "view",
        "file",
        (
            ArgSpec("participant", "str", default="server", max_len=128),
            ArgSpec("lines", "int", default=40, min=1, max=10_000),
            ArgSpec("file", "str", default="log.txt"),
        ),
    ),
    AdminCommand(
        "cat",
        "view",
        "file",
        (
            ArgSpec("participant", "str", required=True, max_len=128),
            ArgSpec("file", "str", required=True),
        ),
    ),
    AdminCommand("sys_info", "view", "participant", (ArgSpec("target", "str", default="server"),)),
    AdminCommand(
        "remove_client", "operate", "sites", (ArgSpec("name", "str", required=True, max_len=128),)
    ),
    AdminCommand("shutdown", "operate", "sites", _SYSTEM),
    AdminCommand("restart", "operate", "sites", _SYSTEM),
    # Served by the console itself, over the commands above.
    AdminCommand("wait", "view", "job", (_JOB,), served_by="console"),
    AdminCommand("shutdown_system", "operate", "sites", served_by="console"),
    # Served by the overseer (high availability); it checks the admin's role itself.
    AdminCommand("list_sp", "view", "nothing", served_by="overseer"),
    AdminCommand("get_active_sp", "view", "nothing", served_by="overseer"),
    AdminCommand(
        "promote_sp",
        "operate",
        "participant",
        (ArgSpec("name", "str", required=True, max_len=128),),
        served_by="overseer",
    ),
)

#: Each declared command by name.
ADMIN_COMMAND: dict[str, AdminCommand] = {c.name: c for c in ADMIN_COMMANDS}


def server_command(name: object) -> AdminCommand:
    """The declaration of a command the server serves; BadArguments for any other name."""
    command = ADMIN_COMMAND.get(name) if isinstance(name, str) else None
    if command is None or command.served_by != "server":
        raise BadArguments(f"unknown command {_show(name)}")
    return command


def validate_args(command: AdminCommand, args: object) -> dict[str, Any]:
    """``args`` checked against ``command``'s declaration: every declared name, defaults
    filled in; BadArguments (one line) for a wrong type, a missing or an undeclared one."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadArguments(f"{command.name}: args must be an object, got {type(args).__name__}")
    extra = sorted(str(k) for k in args if k not in command.arg_names)
    if extra:
        raise BadArguments(f"{command.name}: unknown argument {_show(extra[0])}")
    checked: dict[str, Any] = {}
    for spec in command.args:
        value = args.get(spec.name)
        if value is None:
            if spec.required:
                raise BadArguments(f"{command.name}: missing argument '{spec.name}'")
            checked[spec.name] = spec.default
            continue
        checked[spec.name] = _check(command.name, spec, value)
    return checked


def _check(cmd: str, spec: ArgSpec, value: object) -> Any:
    where = f"{cmd}: {spec.name}"
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise BadArguments(f"{where}: expected true or false, got {_show(value)}")
        return value
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadArguments(f"{where}: expected an integer, got {_show(value)}")
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            raise BadArguments(f"{where}: expected {spec.min}..{spec.max}, got {value}")
        return value
    if spec.type == "names":
        if not isinstance(value, list) or len(value) > MAX_NAMES:
            raise BadArguments(f"{where}: expected a list of at most {MAX_NAMES} names")
        return [_string(where, item, spec.max_len) for item in value]
    text = _string(where, value, spec.max_len, spec.multiline)
    if spec.type == "job_id" and not JOB_ID.fullmatch(text):
        raise BadArguments(f"{where}: not a job id: {_show(text)}")
    if spec.choices and text not in spec.choices:
        raise BadArguments(f"{where}: expected one of {', '.join(spec.choices)}, got {_show(text)}")
    return text


def _string(where: str, value: object, max_len: int, multiline: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise BadArguments(f"{where}: expected a non-empty string, got {_show(value)}")
    if len(value) > max_len:
        raise BadArguments(f"{where}: longer than {max_len} characters")
    if (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value):
        raise BadArguments(f"{where}: control characters are not allowed: {_show(value)}")
    return value


def _show(value: object, limit: int = 80) -> str:
    """A value for a one-line message: repr'd (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
