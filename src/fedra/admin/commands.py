"""The console's face of each declared admin command: its Session method and its rendering.

Everything else about a command (name, arguments, usage, help, the right it needs, its CLI
name, its result type) is its one declaration in :mod:`fedra.core.admin_spec`. The console
parses typed lines against those declarations (:mod:`fedra.admin.syntax`) and the
``fedra job`` commands are built from the same entries, so usage, help text and argument
names cannot drift apart. Each entry here only names the :class:`Session` method that does
the work and how its result prints; a test checks that every declared command has an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from fedra.admin.errors import UsageError
from fedra.admin.render import (
    ConsoleArgs,
    JsonView,
    OutputFormat,
    Renderer,
    as_data,
    keyed,
    print_json,
    say,
    show_data,
    show_errors,
    show_job,
    show_jobs,
    show_listing,
    show_status,
    show_text,
)
from fedra.admin.session import Session
from fedra.core.admin_spec import ADMIN_COMMAND, ADMIN_COMMANDS, AdminCommand, ArgSpec


@dataclass(frozen=True)
class Command:
    """One declared admin command, bound to its Session method and its renderers."""

    declaration: AdminCommand
    method: Callable[..., object]
    show: Renderer = show_data
    json_view: JsonView = as_data

    @property
    def name(self) -> str:
        """The command's name, as typed in the console."""
        return self.declaration.name

    @property
    def help(self) -> str:
        """The declared help text."""
        return self.declaration.help

    @property
    def params(self) -> tuple[ArgSpec, ...]:
        """The arguments the console and the CLI take."""
        return self.declaration.params

    @property
    def cli(self) -> str | None:
        """The ``fedra job`` command, if any."""
        return self.declaration.cli

    @property
    def usage(self) -> str:
        """The console usage line."""
        return self.declaration.usage

    @property
    def summary(self) -> str:
        """The first line of the help text."""
        return self.declaration.summary

    @property
    def needs(self) -> str:
        """The right the command needs, for help texts (``view``, ``submit_job`` ...)."""
        return self.declaration.needs


#: How each command's result is shown, where not as plain data.
_SHOW: dict[str, tuple[Renderer, JsonView]] = {
    "check_status": (show_status, as_data),
    "submit_job": (say("Submitted job: {value}"), keyed("job_id")),
    "list_jobs": (show_jobs, as_data),
    "get_job": (show_job, as_data),
    "abort_job": (say("Abort requested: job {job_id} is {status}"), as_data),
    "clone_job": (say("Cloned job {job_id} as {value}"), keyed("job_id")),
    "delete_job": (say("Deleted job {job_id}"), as_data),
    "download_job": (say("Downloaded job {job_id} to {value}"), keyed("path")),
    "wait": (show_job, as_data),
    "show_errors": (show_errors, as_data),
    "tail": (show_text, keyed("text")),
    "cat": (show_text, keyed("text")),
    "remove_client": (say("Removed client {name}"), as_data),
    "shutdown": (say("Shutdown requested: {target} {names}"), as_data),
    "restart": (say("Restart requested: {target} {names}"), as_data),
    "shutdown_system": (say("Shutting down the whole system."), as_data),
    "pwd": (say("{name}: {root}"), as_data),
    "ls": (show_listing, as_data),
    "head": (show_text, keyed("text")),
    "grep": (show_text, keyed("text")),
    "reset_errors": (say("Reset the errors of job {job_id}: {cleared} cleared"), as_data),
    "set_timeout": (say("Each command now waits at most {seconds} s for its reply"), as_data),
}


def _bind(declaration: AdminCommand) -> Command:
    method = getattr(Session, declaration.name)
    show, json_view = _SHOW.get(declaration.name, (show_data, as_data))
    return Command(declaration, method, show, json_view)


#: Every declared command, in declaration order, with its Session method.
COMMANDS: tuple[Command, ...] = tuple(_bind(c) for c in ADMIN_COMMANDS)
BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
#: Words the console handles itself.
CONSOLE_WORDS = {"?": "List commands, or show one's usage: ? CMD.", "bye": "Leave the console."}


def find(name: str) -> Command:
    """The command called ``name``; UsageError naming it otherwise."""
    command = BY_NAME.get(name)
    if command is None or name not in ADMIN_COMMAND:
        raise UsageError(f"unknown command '{name}'; type ? for the list of commands")
    return command


def execute(session: Session, command: Command, args: ConsoleArgs) -> object:
    """Run ``command`` on ``session`` with parsed ``args``; return the method's result."""
    return command.method(session, **args)


def present(
    out: Console,
    command: Command,
    args: ConsoleArgs,
    value: object,
    fmt: OutputFormat = OutputFormat.TEXT,
) -> None:
    """Print a result as text (the command's renderer) or as JSON."""
    if fmt == OutputFormat.JSON:
        print_json(out, command.json_view(args, value))
    else:
        command.show(out, args, value)
