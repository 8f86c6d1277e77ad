"""The :class:`~fedra.admin.Session` methods of the commands FLARE 2.1 users type by habit:
``info``, ``pwd``, ``ls``, ``head``, ``grep``, ``env``, ``report_resources``,
``reset_errors`` and ``set_timeout``.

A mixin of :class:`~fedra.admin.Session`, kept apart so that each module stays one concept
of a readable size; every method goes through the session's one round trip
(:meth:`Session._result`), which checks the arguments against the declarations of
:mod:`fedra.core.admin_spec_workspace` before anything is sent.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from fedra.admin.errors import UsageError
from fedra.core.admin_results import (
    EnvInfo,
    ErrorsReset,
    FileText,
    Listing,
    ResourceReport,
    ServerInfo,
    SessionTimeout,
    Workspace,
)
from fedra.core.admin_spec import ADMIN_COMMAND, Args, BadArguments, validate_args

R = TypeVar("R", bound=msgspec.Struct)


class WorkspaceCommands:
    """``info``, ``pwd``, ``ls``, ``head``, ``grep``, ``env``, ``report_resources``,
    ``reset_errors`` and ``set_timeout``, over the session's round trip."""

    #: Seconds to wait for each reply (None: for ever); ``set_timeout`` changes it.
    reply_timeout: float | None

    def _result(self, cmd: str, args: Args, kind: type[R], zip: bytes | None = None) -> R:
        raise NotImplementedError  # the Session's one round trip

    def info(self) -> ServerInfo:
        """The project, the server, Fedra's version, who you are, your scope per right, and
        which server is hot."""
        return self._result("info", {}, ServerInfo)

    def pwd(self, target: str = "server") -> Workspace:
        """A participant's workspace folder, and what may be named in it."""
        return self._result("pwd", {"target": target}, Workspace)

    def ls(
        self, participant: str = "server", path: str | None = None, recursive: bool = False
    ) -> Listing:
        """A participant's workspace (its log.txt and the jobs you may see), or a folder of a
        job (``JOB_ID`` or ``JOB_ID/PATH``); ``recursive``: sub-folders too (bounded)."""
        args: Args = {"participant": participant, "path": path or None, "recursive": recursive}
        return self._result("ls", args, Listing)

    def head(self, participant: str, file: str, lines: int = 10) -> str:
        """The first ``lines`` lines of ``log.txt`` or of a job's file ``JOB_ID/PATH``."""
        args: Args = {"participant": participant, "file": file, "lines": lines}
        return self._result("head", args, FileText).text

    def grep(self, participant: str, pattern: str, file: str, ignore_case: bool = False) -> str:
        """The lines of ``log.txt`` or of a job's file that match ``pattern`` (a regular
        expression, or plain text), as ``NUMBER:LINE``."""
        args: Args = {
            "participant": participant,
            "pattern": pattern,
            "file": file,
            "ignore_case": ignore_case,
        }
        return self._result("grep", args, FileText).text

    def env(self, target: str = "server") -> EnvInfo:
        """A participant's runtime facts: versions, platform, CPUs, memory, resources."""
        return self._result("env", {"target": target}, EnvInfo)

    def report_resources(self) -> ResourceReport:
        """Each site's resources as the scheduler sees them (declared, free, jobs)."""
        return self._result("report_resources", {}, ResourceReport)

    def reset_errors(self, job_id: str) -> ErrorsReset:
        """Clear a job's recorded errors: show_errors shows only those recorded after."""
        return self._result("reset_errors", {"job_id": job_id}, ErrorsReset)

    def set_timeout(self, seconds: float) -> SessionTimeout:
        """Wait at most ``seconds`` for each reply of this session from now on."""
        try:
            validate_args(ADMIN_COMMAND["set_timeout"], {"seconds": seconds})
        except BadArguments as exc:
            raise UsageError(str(exc)) from None
        self.reply_timeout = float(seconds)
        return SessionTimeout(self.reply_timeout)
