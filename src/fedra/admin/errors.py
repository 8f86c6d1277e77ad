"""Errors of the admin client, and the exit codes the CLI maps them to.

::

    FedraError                      (fedra.core)
    ├── ConfigError                 exit 2
    │   ├── KitError                exit 2   the admin kit is missing or invalid (names file, key)
    │   └── UsageError              exit 2   a command was typed wrong (unknown name, bad arguments)
    └── AdminError                  exit 8   the server refused a command, or cannot be reached
        └── WaitTimeout             exit 8   a job did not finish in time (also a TimeoutError)

Each prints as one line (``str(err)``) with an optional ``hint``.
"""

from __future__ import annotations

from fedra.core import ConfigError, FedraError

#: The hint shown whenever the admin kit cannot be found or used.
KIT_HINT = "pass --kit DIR (the admin's startup kit), or run 'fedra poc prepare' here"


class AdminError(FedraError):
    """The server answered a command with ``ok: false``, or could not be reached or understood.

    Carries the server's message and, when it sent one, its hint.
    """

    exit_code = 8

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class WaitTimeout(AdminError, TimeoutError):
    """A job did not reach a final status within the time allowed to wait for it."""

    def __init__(self, job_id: str, status: str, timeout: float) -> None:
        self.job_id = job_id
        self.status = status
        self.timeout = timeout
        super().__init__(
            f"job {job_id} is still {status} after {timeout:g} s",
            hint="wait longer (--timeout), or check it with 'fedra job status ID'",
        )


class KitError(ConfigError):
    """The admin kit is missing, or a file or key in it is invalid."""

    def __init__(self, message: str, hint: str | None = KIT_HINT) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(ConfigError):
    """A command name is unknown, or its arguments do not match its usage."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
