"""Errors of provisioning, and the exit codes the CLI maps them to.

::

    FedraError                      (fedra.core)
    ├── ConfigError                 exit 2
    │   └── ProjectError            exit 2   project.yml is invalid: names file, line, key, what
    └── KitTampered                 exit 9   (fedra.pki) a signed startup/ file was changed

Each prints as one line (``str(err)``) with an optional ``hint``.
"""

from __future__ import annotations

from fedra.core import ConfigError


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
