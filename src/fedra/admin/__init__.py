"""The admin client: a typed Python API (Session), the interactive console, and the command table.

The console (``fedra admin``), the ``fedra job`` commands and :class:`Session` are three faces
of one API: every command is declared once in :mod:`fedra.core.admin_spec`, and each entry of
:data:`COMMANDS` binds a declaration to the Session method doing the work. Session methods
return the typed results of :mod:`fedra.core.admin_results`, re-exported here.
"""

from fedra.admin.commands import COMMANDS, Command, find
from fedra.admin.console import AdminConsole
from fedra.admin.download import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_FILES, extract_result
from fedra.admin.errors import AdminError, KitError, UsageError, WaitTimeout
from fedra.admin.kit import DEFAULT_KIT, AdminKit
from fedra.admin.render import OutputFormat
from fedra.admin.session import Connection, Session
from fedra.admin.syntax import parse_args
from fedra.core.admin_results import (
    AbortResult,
    ActiveSp,
    JobErrors,
    JobInfo,
    JobStats,
    RunningJob,
    ServerStatus,
    ServiceProvider,
    SiteCapacity,
    SitesStatus,
    SiteState,
    SpState,
    StatusEntry,
    SysInfo,
)

__all__ = [
    "COMMANDS",
    "DEFAULT_KIT",
    "MAX_DOWNLOAD_BYTES",
    "MAX_DOWNLOAD_FILES",
    "AbortResult",
    "ActiveSp",
    "AdminConsole",
    "AdminError",
    "AdminKit",
    "Command",
    "Connection",
    "JobErrors",
    "JobInfo",
    "JobStats",
    "KitError",
    "OutputFormat",
    "RunningJob",
    "ServerStatus",
    "ServiceProvider",
    "Session",
    "SiteCapacity",
    "SiteState",
    "SitesStatus",
    "SpState",
    "StatusEntry",
    "SysInfo",
    "UsageError",
    "WaitTimeout",
    "extract_result",
    "find",
    "parse_args",
]
