"""Errors of provisioning, and the exit codes the CLI maps them to.

::

    FedraError                      (fedra.core)
    ├── ConfigError                 exit 2
    │   └── ProjectError            exit 2   project.yml is invalid: names file, line, key, what
    └── KitTampered                 exit 9   a signed startup/ file was changed, removed or added

Each prints as one line (``str(err)``) with an optional ``hint``.
"""

from __future__ import annotations

from pathlib import Path

from fedra.core import ConfigError, FedraError


class ProjectError(ConfigError):
    """``project.yml`` cannot be read or is invalid.

    ``str(err)`` reads ``FILE:LINE: KEY: expected …, got …``; the parts are attributes too.
    """

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class KitTampered(FedraError):
    """A startup kit's ``startup/`` folder no longer matches its signature.

    ``file`` names the changed, missing or added file (relative to the kit), ``reason`` says
    which of those it is. A process refuses to start from such a kit.
    """

    exit_code = 9
    hint = "use the kit as provisioned (re-provision it, or unzip it again); edit only local/"

    def __init__(self, kit: Path, file: str, reason: str) -> None:
        self.kit = kit
        self.file = file
        self.reason = reason
        super().__init__(f"startup kit {kit} was tampered with: {file}: {reason}")
