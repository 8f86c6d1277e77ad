"""The admin client: a typed Python API (Session), the interactive console, and the command table.

The console (``fedra admin``), the ``fedra job`` commands and :class:`Session` are three faces
of one API: every console command and CLI command is an entry of :data:`COMMANDS` that names the
Session method doing the work.
"""

from fedra.admin.commands import COMMANDS, Command, Param, find
from fedra.admin.console import AdminConsole
from fedra.admin.download import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_FILES, extract_result
from fedra.admin.errors import AdminError, KitError, UsageError, WaitTimeout
from fedra.admin.kit import DEFAULT_KIT, AdminKit
from fedra.admin.render import OutputFormat
from fedra.admin.session import Connection, Session, is_final
from fedra.admin.syntax import parse_args

__all__ = [
    "COMMANDS",
    "DEFAULT_KIT",
    "MAX_DOWNLOAD_BYTES",
    "MAX_DOWNLOAD_FILES",
    "AdminConsole",
    "AdminError",
    "AdminKit",
    "Command",
    "Connection",
    "KitError",
    "OutputFormat",
    "Param",
    "Session",
    "UsageError",
    "WaitTimeout",
    "extract_result",
    "find",
    "is_final",
    "parse_args",
]
