"""The interactive admin console: type commands, read tables.

::

    Connected to server localhost:8003 as admin@nvidia.com (project_admin)
    Type ? to list commands; type "? cmdName" to show usage of a command.
    > list_jobs

On a terminal it reads lines with prompt_toolkit (history in ``~/.fedra/admin_history``, tab
completion of commands and job ids). Without one (a pipe, a file) it reads stdin line by line
and prints the login lines to stderr, so ``fedra admin < script`` is scriptable and its stdout
holds only results; the exit status is that of the first command that failed. Every command
comes from :mod:`fedra.admin.commands`; errors print as one line and the console goes on.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.table import Table
from rich.text import Text

from fedra.admin.commands import BY_NAME, COMMANDS, CONSOLE_WORDS, execute, find, present
from fedra.admin.errors import AdminError, UsageError
from fedra.admin.render import make_console
from fedra.admin.session import Session
from fedra.admin.syntax import parse_args, split_format
from fedra.core import FedraError
from fedra.core.admin_results import AbortResult, JobCreated, JobInfo, RunningJob, ServerStatus

if TYPE_CHECKING:
    from prompt_toolkit.history import History

PROMPT = "> "
WELCOME = 'Type ? to list commands; type "? cmdName" to show usage of a command.'
_EXIT_WORDS = {"bye", "exit", "quit"}
_HELP_WORDS = {"?", "help"}


def history_path() -> Path:
    """Where the console keeps the lines typed: ``~/.fedra/admin_history``."""
    return Path.home() / ".fedra" / "admin_history"


def open_history(path: Path | None = None) -> History:
    """A file-backed history at ``path``, or an in-memory one when that is not writable."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    try:
        path = path or history_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except (OSError, RuntimeError):
        return InMemoryHistory()
    return FileHistory(str(path))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class AdminConsole:
    """A read-command-print loop over a :class:`Session`."""

    def __init__(
        self,
        session: Session,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        history: Path | None = None,
    ) -> None:
        self.session = session
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stdout = stdout if stdout is not None else sys.stdout
        stderr = stderr if stderr is not None else sys.stderr
        self.interactive = _isatty(self._stdin) and _isatty(self._stdout)
        self.out = make_console(self._stdout)
        self.err = make_console(stderr)
        self._history = history
        #: Job ids seen in results, newest last; the completer offers them.
        self.job_ids: list[str] = []
        #: Without a terminal, the exit code of the first command that failed (else 0).
        self.exit_code = 0

    def banner(self) -> str:
        """The login line: which server, as whom."""
        kit = self.session.kit
        if kit is None:
            return "Connected to the server"
        return f"Connected to server {kit.target} as {kit.name} ({kit.role})"

    def run(self) -> int:
        """Read and run commands until ``bye`` or end of input; return the exit code."""
        greeting = self.out if self.interactive else self.err
        greeting.print(self.banner(), markup=False)
        greeting.print(WELCOME, markup=False)
        lines = self._prompt_lines() if self.interactive else self._piped_lines()
        for line in lines:
            if not self.handle(line):
                break
        return self.exit_code

    def handle(self, line: str) -> bool:
        """Run one line; False when the line asks to leave."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            self.report(UsageError(f"cannot read the line: {exc}"))
            return True
        if not words:
            return True
        name, argv = words[0], words[1:]
        if name.startswith("?") and len(name) > 1:
            name, argv = "?", [name[1:], *argv]
        if name in _EXIT_WORDS:
            return False
        if name in _HELP_WORDS:
            self.show_help(argv)
            return True
        try:
            command = find(name)
            fmt, argv = split_format(argv)
            args = parse_args(command, argv)
            value = execute(self.session, command, args)
        except FedraError as exc:
            self.report(exc)
            return True
        except KeyboardInterrupt:
            self.err.print("interrupted", markup=False)
            return True
        try:
            present(self.out, command, args, value, fmt)
        except Exception as exc:
            self.report(AdminError(f"cannot show the reply to '{name}': {exc!r}"))
        self._remember(value)
        return True

    def report(self, exc: FedraError) -> None:
        """Print an error as one line (and its hint), and remember the first exit code."""
        # One style for the whole line: no escape codes inside it for pexpect to trip on.
        self.err.print(Text(f"error: {exc}", style="red"))
        if exc.hint:
            self.err.print(Text(f"hint: {exc.hint}"))
        if not self.exit_code and not self.interactive:
            self.exit_code = exc.exit_code

    def show_help(self, argv: list[str]) -> None:
        """``?``: the list of commands; ``? CMD``: its usage, arguments and CLI equivalent."""
        if not argv:
            table = Table("Command", "Description", box=None, show_header=False)
            for command in COMMANDS:
                table.add_row(command.name, command.summary)
            for word, text in CONSOLE_WORDS.items():
                table.add_row(word, text)
            self.out.print(table)
            return
        if argv[0] in CONSOLE_WORDS:
            self.out.print(f"{argv[0]}: {CONSOLE_WORDS[argv[0]]}", markup=False)
            return
        if argv[0] not in BY_NAME:
            self.report(UsageError(f"unknown command '{argv[0]}'; type ? for the list of commands"))
            return
        command = BY_NAME[argv[0]]
        self.out.print(f"usage: {command.usage}", markup=False)
        self.out.print(f"  {command.help}", markup=False)
        self.out.print(f"  needs the right: {command.needs}", markup=False)
        for param in command.params:
            names = ", ".join(param.flags) or param.shown
            default = "" if param.default in (None, False) else f" (default: {param.default})"
            self.out.print(f"  {names:<18} {param.help}{default}", markup=False)
        self.out.print(f"  {'--format json':<18} print the result as JSON", markup=False)
        if command.declaration.cli_path:
            self.out.print(f"  same as: {command.declaration.cli_path}", markup=False)

    def _remember(self, value: object) -> None:
        """Keep the job ids a result names, for completion."""
        found: list[str] = []
        if isinstance(value, str) and value and "\n" not in value and " " not in value:
            found.append(value)
        rows = value.jobs if isinstance(value, ServerStatus) else value
        if isinstance(value, JobInfo | JobCreated | AbortResult):
            found.append(value.job_id)
        if isinstance(rows, list):
            found += [r.job_id for r in rows if isinstance(r, JobInfo | RunningJob)]
        for job_id in found:
            if job_id in self.job_ids:
                self.job_ids.remove(job_id)
            self.job_ids.append(str(job_id))

    def _piped_lines(self) -> Iterator[str]:
        for line in self._stdin:
            yield line.rstrip("\r\n")

    def _prompt_lines(self) -> Iterator[str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.input import create_input
        from prompt_toolkit.output import create_output
        from prompt_toolkit.output.vt100 import Vt100_Output

        from fedra.admin.completion import AdminCompleter

        output = create_output(stdout=self._stdout)
        if isinstance(output, Vt100_Output):
            # No cursor-position requests: pexpect and some terminals never answer them.
            output.enable_cpr = False
        prompt: PromptSession[str] = PromptSession(
            history=open_history(self._history),
            completer=AdminCompleter(lambda: reversed(self.job_ids)),
            complete_while_typing=False,
            input=create_input(self._stdin),
            output=output,
        )
        while True:
            try:
                yield prompt.prompt([("fg:ansidefault bold", PROMPT)])
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
