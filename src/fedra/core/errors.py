"""One exception hierarchy for Fedra, and the exit codes the CLI maps them to.

::

    FedraError                      exit 1   anything Fedra raises on purpose
    ├── ConfigError                 exit 2   a job folder, config file or argument is invalid
    │   └── JobValidationError      exit 2   names the file, the key and what was expected
    ├── WireError                   exit 3   bytes from outside are malformed, oversized or corrupt
    ├── InvalidTransition           exit 4   a state machine refused a transition
    ├── SiteError                   exit 5   a site failed a task (site, task, traceback)
    ├── WorkflowError               exit 6   a workflow cannot go on (too few results, bad state)
    └── RunAborted                  exit 130 the run was stopped (Ctrl-C, abort command)

Errors carry enough context to print one clear line (``str(err)``) and, where useful, a hint.
"""

from __future__ import annotations

EXIT_OK = 0


class FedraError(Exception):
    """Base class of every error Fedra raises on purpose."""

    exit_code = 1
    hint: str | None = None


class ConfigError(FedraError):
    """A configuration value, file or command-line argument is invalid."""

    exit_code = 2


class JobValidationError(ConfigError):
    """A job folder is invalid: says which file, which key, and what was expected."""

    def __init__(self, file: str, key: str, expected: str, got: object = None) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        self.got = got
        where = f"{file}: {key}" if key else file
        message = f"{where}: expected {expected}"
        if got is not None:
            message += f", got {got!r}"
        super().__init__(message)

    @classmethod
    def unknown_key(cls, file: str, key: str, known: str, what: str = "key") -> JobValidationError:
        """A key the file's schema (or a component's argument the class) does not have:
        ``file: unknown key 'key' (expected one of: known)``, ``key`` the whole path
        (``workflows[0].rounds``), ``what`` ``key`` or ``argument``."""
        error = cls(file, key, f"one of: {known}")
        error.args = (f"{file}: unknown {what} {key!r} (expected one of: {known})",)
        return error


class WireError(FedraError):
    """Bytes received from outside are malformed, oversized or corrupt."""

    exit_code = 3


class InvalidTransition(FedraError):
    """A state machine was asked for a transition its table does not allow."""

    exit_code = 4

    def __init__(self, current: object, requested: object) -> None:
        self.current = current
        self.requested = requested
        super().__init__(f"transition {current} -> {requested} is not allowed")


class SiteError(FedraError):
    """A site failed a task. Carries the site, the task and the site's traceback."""

    exit_code = 5

    def __init__(self, site: str, task: str, detail: str) -> None:
        self.site = site
        self.task = task
        self.detail = detail
        last = detail.strip().splitlines()[-1] if detail.strip() else "unknown error"
        super().__init__(f"site {site} failed task '{task}': {last}")


class WorkflowError(FedraError):
    """A workflow cannot continue (for example too few sites answered in time)."""

    exit_code = 6


class RunAborted(FedraError):
    """The run was stopped on request (Ctrl-C or an abort command)."""

    exit_code = 130
