"""Errors of the overseer and its client.

::

    FedraError                      (fedra.core)
    └── OverseerError               exit 10  the overseer cannot do what was asked
        ├── OverseerUnavailable     exit 10  it cannot be reached, TLS failed, it timed out or
        │                                    answered 5xx: worth retrying later
        ├── OverseerRefused         exit 10  it answered 4xx: the request itself is wrong
        │                                    (bad body, wrong role, unknown server); carries
        │                                    the HTTP status and the overseer's message
        ├── ElectionRefused         exit 10  the election refused a request (unknown server,
        │                                    server not live or not ready, too many servers)
        └── StateFileError          exit 10  the overseer's state file is unreadable or corrupt
"""

from __future__ import annotations

from pathlib import Path

from fedra.core import FedraError


class OverseerError(FedraError):
    """Something the overseer, or a client talking to it, cannot do."""

    exit_code = 10


class OverseerUnavailable(OverseerError):
    """The overseer cannot be reached or answered with a server error; retrying may help."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"overseer {url} is unavailable: {reason}")
        self.hint = "check that the overseer is running and that its host name resolves here"


class OverseerRefused(OverseerError):
    """The overseer refused a request (HTTP 4xx): ``status`` and the overseer's ``message``."""

    def __init__(self, url: str, status: int, message: str) -> None:
        self.url = url
        self.status = status
        self.message = message
        super().__init__(f"overseer {url} refused the request ({status}): {message}")


class ElectionRefused(OverseerError):
    """The election refused a request: a server to promote is unknown, silent or not ready,
    or there are more servers than the overseer keeps.

    ``status`` is the HTTP status the service answers with (404 unknown, 409 not possible).
    """

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)


class StateFileError(OverseerError):
    """The overseer's state file cannot be read or does not hold a valid state."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"overseer state file {path}: {reason}")
        self.hint = (
            "restore the file from a backup; delete it only when every server is stopped "
            "(the overseer then elects a hot server afresh)"
        )
