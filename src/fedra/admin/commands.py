"""The one table of admin commands: names, arguments, help, Session method, rendering.

The console parses typed lines against these entries (:mod:`fedra.admin.syntax`) and the
``fedra job`` commands are built from the same entries, so usage, help text and argument names
cannot drift apart. Each entry names the :class:`Session` method that does the work; the table
adds no behaviour of its own. The right each command needs and what it acts on come from the
one declaration of admin commands, :mod:`fedra.core.admin_spec` (the server enforces it; a
test checks that every entry here is declared there and every server command is here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console

from fedra.admin import render
from fedra.admin.errors import UsageError
from fedra.admin.session import Session
from fedra.core.admin_spec import ADMIN_COMMAND, STATUS_TARGETS, SYSTEM_TARGETS, AdminCommand

ParamKind = Literal["str", "int", "float", "path", "flag", "job_id", "names"]


@dataclass(frozen=True)
class Param:
    """One argument: positional unless it has ``flags``; ``names`` takes the rest of the line."""

    name: str
    help: str
    kind: ParamKind = "str"
    flags: tuple[str, ...] = ()
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    metavar: str = ""

    @property
    def positional(self) -> bool:
        """Whether the argument is given by position rather than by flag."""
        return not self.flags

    @property
    def shown(self) -> str:
        """How usage lines name the argument's value."""
        if self.metavar:
            return self.metavar
        if self.choices:
            return "|".join(self.choices)
        return self.name.upper()

    def usage(self) -> str:
        """This argument in a usage line: ``ID``, ``[LINES]``, ``[-d]``, ``[-n PREFIX]``."""
        if self.kind == "flag":
            return f"[{self.flags[0]}]"
        text = self.shown if self.positional else f"{self.flags[0]} {self.shown}"
        if self.kind == "names":
            text += " ..."
        return text if self.required else f"[{text}]"


@dataclass(frozen=True)
class Command:
    """One admin command, as the console, the CLI and the docs present it."""

    name: str
    help: str
    method: Callable[..., Any]
    params: tuple[Param, ...] = ()
    show: render.Renderer = render.show_data
    json_view: render.JsonView = render.as_data
    cli: str | None = None

    @property
    def usage(self) -> str:
        """The console usage line."""
        return " ".join([self.name, *(p.usage() for p in self.params)])

    @property
    def summary(self) -> str:
        """The first line of the help text."""
        return self.help.split("\n", 1)[0]

    @property
    def declaration(self) -> AdminCommand:
        """The command's declaration: the right it needs and what it acts on."""
        return ADMIN_COMMAND[self.name]

    @property
    def needs(self) -> str:
        """The right the command needs, for help texts (``view``, ``submit_job`` ...)."""
        declared = self.declaration
        extra = f" + {declared.object_right} on the job" if declared.object_right else ""
        return f"{declared.right} (acts on: {declared.acts_on}){extra}"


def _job_id(help: str = "The job's id (see list_jobs).") -> Param:
    return Param("job_id", help, "job_id", required=True)


_SYSTEM = (
    Param("target", "What: client, server or all.", required=True, choices=SYSTEM_TARGETS),
    Param("names", "Sites (only with target client; default: all).", "names", metavar="SITE"),
)

_SP = (
    Command(
        "list_sp",
        "List the servers the overseer knows (high availability): state, hot, last seen.",
        Session.list_sp,
    ),
    Command(
        "get_active_sp", "Show the hot server and the service session id.", Session.get_active_sp
    ),
    Command(
        "promote_sp",
        "Make a standby server hot (project admins); running jobs resume on it.",
        Session.promote_sp,
        (Param("name", "The server to promote (see list_sp).", required=True),),
    ),
    Command(
        "shutdown_system",
        "Shut down every site and the server (project admins).",
        Session.shutdown_system,
        show=render.say("Shutting down the whole system."),
    ),
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "check_status",
        "Show the server's status, jobs and sites, or every site's connection.",
        Session.check_status,
        (Param("target", "server or client.", default="server", choices=STATUS_TARGETS),),
        show=render.show_status,
    ),
    Command(
        "submit_job",
        "Validate a job folder here, upload it, and print the new job's id.",
        Session.submit_job,
        (Param("folder", "The job folder (with meta.json).", "path", required=True),),
        show=render.say("Submitted job: {value}"),
        json_view=render.keyed("job_id"),
        cli="submit",
    ),
    Command(
        "list_jobs",
        "List jobs with their status, submitter, submission time and duration.",
        Session.list_jobs,
        (
            Param(
                "detailed",
                "Also show each job's history and failure.",
                "flag",
                flags=("-d", "--detailed"),
                default=False,
            ),
            Param(
                "prefix",
                "Only jobs whose id starts with PREFIX.",
                flags=("-n", "--prefix"),
                metavar="PREFIX",
            ),
        ),
        show=render.show_jobs,
        cli="list",
    ),
    Command(
        "get_job",
        "Show one job: status, history, what it waits for, why it failed.",
        Session.get_job,
        (_job_id(),),
        show=render.show_job,
        cli="status",
    ),
    Command(
        "abort_job",
        "Abort a submitted or running job.",
        Session.abort_job,
        (_job_id(),),
        show=render.say("Abort requested: job {job_id} is {status}"),
        cli="abort",
    ),
    Command(
        "clone_job",
        "Submit a copy of a job; prints the new job's id.",
        Session.clone_job,
        (_job_id(),),
        show=render.say("Cloned job {job_id} as {value}"),
        json_view=render.keyed("job_id"),
        cli="clone",
    ),
    Command(
        "delete_job",
        "Delete a job and its workspace from the server.",
        Session.delete_job,
        (_job_id(),),
        show=render.say("Deleted job {job_id}"),
        cli="delete",
    ),
    Command(
        "download_job",
        "Download a job's folder and results (models, tb_events, logs) into DIR/<job id>/.",
        Session.download_job,
        (
            _job_id(),
            Param(
                "dest",
                "Folder to download into (default: the kit's transfer folder).",
                "path",
                flags=("-o", "--output"),
                metavar="DIR",
            ),
        ),
        show=render.say("Downloaded job {job_id} to {value}"),
        json_view=render.keyed("path"),
        cli="download",
    ),
    Command(
        "wait",
        "Wait until a job reaches a final status, then show it.",
        Session.wait,
        (
            _job_id(),
            Param(
                "timeout",
                "Give up after this many seconds (default: never).",
                "float",
                flags=("--timeout",),
                metavar="SECONDS",
            ),
        ),
        show=render.show_job,
        cli="wait",
    ),
    Command(
        "show_stats",
        "Show a job's progress: rounds, metrics, status.",
        Session.show_stats,
        (_job_id(),),
        cli="stats",
    ),
    Command(
        "show_errors",
        "Show why a job failed: the failure and the errors sites reported.",
        Session.show_errors,
        (_job_id(),),
        cli="errors",
    ),
    Command(
        "tail",
        "Show the last lines of a participant's log (or of a job's file, as for cat).",
        Session.tail,
        (
            Param("participant", "server or a site name.", default="server"),
            Param("lines", "How many lines.", "int", flags=("-n", "--lines"), default=50),
            Param(
                "file",
                "log.txt, or JOB_ID/PATH (a file of a job you may see).",
                flags=("-f", "--file"),
                default="log.txt",
            ),
        ),
        show=render.show_text,
        json_view=render.keyed("text"),
    ),
    Command(
        "cat",
        "Show a participant's log.txt, or a file of a job you may see (JOB_ID/PATH).",
        Session.cat,
        (
            Param("participant", "server or a site name.", required=True),
            Param(
                "file",
                "log.txt (the participant's log) or JOB_ID/PATH (a file of that job).",
                required=True,
            ),
        ),
        show=render.show_text,
        json_view=render.keyed("text"),
    ),
    Command(
        "sys_info",
        "Show host information of the server or a site.",
        Session.sys_info,
        (Param("target", "server or a site name.", default="server"),),
    ),
    Command(
        "remove_client",
        "Remove a site from the federation (it must register again).",
        Session.remove_client,
        (Param("name", "The site's name.", required=True),),
        show=render.say("Removed client {name}"),
    ),
    Command(
        "shutdown",
        "Shut down sites, the server, or all.",
        Session.shutdown,
        _SYSTEM,
        show=render.say("Shutdown requested: {target} {names}"),
    ),
    Command(
        "restart",
        "Restart sites, the server, or all.",
        Session.restart,
        _SYSTEM,
        show=render.say("Restart requested: {target} {names}"),
    ),
    *_SP,
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
#: Words the console handles itself.
CONSOLE_WORDS = {"?": "List commands, or show one's usage: ? CMD.", "bye": "Leave the console."}


def find(name: str) -> Command:
    """The command called ``name``; UsageError naming it otherwise."""
    command = BY_NAME.get(name)
    if command is None:
        raise UsageError(f"unknown command '{name}'; type ? for the list of commands")
    return command


def execute(session: Session, command: Command, args: dict[str, Any]) -> Any:
    """Run ``command`` on ``session`` with parsed ``args``; return the method's value."""
    return command.method(session, **args)


def present(
    out: Console,
    command: Command,
    args: dict[str, Any],
    value: Any,
    fmt: render.OutputFormat = render.OutputFormat.TEXT,
) -> None:
    """Print a result as text (the command's renderer) or as JSON."""
    if fmt == render.OutputFormat.JSON:
        render.print_json(out, command.json_view(args, value))
    else:
        command.show(out, args, value)
