"""The admin API in Python: one typed method per admin command, over one connection.

::

    with Session.connect(Path("poc/admin")) as s:
        job_id = s.submit_job(Path("jobs/hello-numpy"))
        s.wait(job_id, timeout=600)
        s.download_job(job_id, Path("results"))

Every method sends one ``admin`` envelope (``id``, ``cmd``, ``args``; a job travels as a zip
in the model's ``zip`` array) and waits for the ``reply`` with the same id. A reply with
``ok: false`` raises :class:`AdminError` carrying the server's message and hint. The
arguments are checked against the command's declaration (:mod:`fedra.core.admin_spec`) before
anything is sent, and the reply's ``data`` becomes the declared result type
(:mod:`fedra.core.admin_results`) in one place, :meth:`Session._result`. The console and the
``fedra job`` commands are thin faces over these methods.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar

import msgspec

from fedra.admin.download import extract_result
from fedra.admin.errors import AdminError, UsageError, WaitTimeout
from fedra.admin.kit import TRANSFER_DIR, AdminKit
from fedra.admin.session_workspace import WorkspaceCommands
from fedra.core import ConfigError, FLModel
from fedra.core.admin_results import (
    AbortResult,
    ActiveSp,
    BadReply,
    Done,
    Downloaded,
    FileText,
    JobCreated,
    JobErrors,
    JobInfo,
    JobList,
    JobStats,
    ServerStatus,
    ServiceProvider,
    SitesStatus,
    SpState,
    SysInfo,
    decode_result,
)
from fedra.core.admin_spec import (
    ADMIN_COMMAND,
    STATUS_TARGETS,
    SYSTEM_TARGETS,
    Args,
    BadArguments,
    validate_args,
)
from fedra.protocol import (
    TO_ADMIN,
    AdminRequest,
    BadMessage,
    Reply,
    decode,
    encode,
    model_zip,
    zip_model,
)
from fedra.wire import Envelope

if TYPE_CHECKING:
    from fedra.overseer import OverseerAnswer, OverseerClient

#: Seconds to wait for a reply before giving up on a command.
DEFAULT_REPLY_TIMEOUT = 120.0

R = TypeVar("R", bound=msgspec.Struct)

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Connection(Protocol):
    """What the session needs from the transport: one envelope out, one envelope in."""

    def send(self, envelope: Envelope) -> None:
        """Send one envelope."""

    def recv(self, timeout: float | None = None) -> Envelope:
        """Receive one envelope; TimeoutError when none arrives within ``timeout`` seconds."""

    def close(self) -> None:
        """Close the connection."""


def check_job_folder(folder: Path) -> None:
    """Validate a job folder (or a zip of one) locally; a malformed job raises naming the
    file and the key."""
    from fedra.job import job_folder, load_job

    with job_folder(folder) as root:
        load_job(root)


def _hot_admin_target(kit: AdminKit) -> tuple[str, str]:
    """(host:admin_port, TLS name) of the hot server, asked of the project's overseer."""
    from fedra.overseer import OverseerError, ParticipantHeartbeat, client_for_kit

    try:
        answer = client_for_kit(kit.root).heartbeat(ParticipantHeartbeat(kit.name))
    except OverseerError as exc:
        raise AdminError(f"cannot ask the overseer which server is hot: {exc}", exc.hint) from exc
    if answer.hot is None:
        raise AdminError("the overseer names no hot server yet", "start a server, then retry")
    return f"{answer.hot.host}:{answer.hot.admin_port}", answer.hot.name


def _sp_view(answer: OverseerAnswer) -> SpState:
    """The overseer's answer as the result of ``list_sp`` and ``promote_sp``."""
    servers = [
        ServiceProvider(
            name=s.info.name,
            address=s.info.address,
            state=s.state.value if s.state is not None else None,
            hot=s.hot,
            live=s.live,
            age_s=None if s.age is None else round(s.age, 1),
            note=s.note,
        )
        for s in answer.servers
    ]
    return SpState(answer.ssid, answer.hot.name if answer.hot else None, servers)


def _zip_folder(folder: Path) -> bytes:
    from fedra.job import zip_job

    return zip_job(folder)


def _job_archive(path: Path) -> bytes:
    """The job folder (or zip of one, unpacked as the server would) at ``path``, validated."""
    from fedra.job import job_folder, load_job

    with job_folder(path) as root:
        load_job(root)
        return _zip_folder(root)


class Session(WorkspaceCommands):
    """A connection to the server's admin endpoint, with one method per admin command."""

    def __init__(
        self,
        connection: Connection,
        *,
        kit: AdminKit | None = None,
        reply_timeout: float | None = DEFAULT_REPLY_TIMEOUT,
    ) -> None:
        self._conn = connection
        self._lock = threading.Lock()
        self._closed = False
        self.kit = kit
        self.reply_timeout = reply_timeout

    @classmethod
    def connect(
        cls, kit: str | Path | AdminKit | None = None, timeout: float = 10.0, *, wait: bool = True
    ) -> Session:
        """Open a session with the admin kit ``kit`` (default ``./poc/admin``).

        Connects over mutual TLS with the kit's certificates to ``server_host:admin_port``, or,
        when the project has an overseer, to the admin port of the server it names hot.
        ``wait``: retry for ``timeout`` s while nothing listens there; False fails
        at once (the CLI), except with an overseer (the hot server may be in a cutover).
        """
        admin_kit = kit if isinstance(kit, AdminKit) else AdminKit.find(kit)
        from fedra.pki import verify_kit

        verify_kit(admin_kit.root)  # refuse a changed kit, naming the file
        ca_pem, cert_pem, key_pem = admin_kit.credentials()
        from fedra.transport import connect

        target, server_name = admin_kit.target, admin_kit.server_name
        if admin_kit.overseer is not None:
            target, server_name = _hot_admin_target(admin_kit)
        try:
            connection = connect(
                target,
                ca_pem=ca_pem,
                cert_pem=cert_pem,
                key_pem=key_pem,
                server_name=server_name,
                timeout=timeout,
                retry_refused=wait or admin_kit.overseer is not None,
            )
        except ConfigError:
            raise
        except Exception as exc:
            hint = getattr(exc, "hint", None) or (
                "is the server running? check server_host and admin_port in "
                f"{admin_kit.startup / 'fed_admin.json'}"
            )
            raise AdminError(f"cannot connect to server {target}: {exc}", hint) from exc
        return cls(connection, kit=admin_kit)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; further commands raise AdminError."""
        if not self._closed:
            self._closed = True
            self._conn.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ------------------------------------------------------------------ the one round trip

    def _call(self, cmd: str, args: Args, zip: bytes | None = None) -> tuple[object, bytes | None]:
        """Send one command, wait for its reply; return (data, zip bytes or None)."""
        model = None if zip is None else zip_model(zip)
        request_id = uuid.uuid4().hex
        request = encode(AdminRequest(id=request_id, cmd=cmd, args=dict(args)), model)
        with self._lock:
            if self._closed:
                raise AdminError("the admin session is closed")
            self._reopen_if_idle_closed()
            try:
                self._conn.send(request)
                reply = self._await_reply(cmd, request_id)
            except AdminError:
                raise
            except TimeoutError as exc:
                raise AdminError(
                    f"no reply to '{cmd}' within {self.reply_timeout} s",
                    "the server may be busy or gone; try again",
                ) from exc
            except Exception as exc:
                refused = str(exc).partition("refused: ")[2]
                if refused:  # the server's limits refused the request before reading it
                    raise AdminError(f"the server refused '{cmd}': {refused}") from exc
                raise AdminError(
                    f"lost the connection to the server during '{cmd}': {exc}",
                    "is the server still running? reconnect and try again",
                ) from exc
        return self._unpack(cmd, reply)

    def _reopen_if_idle_closed(self) -> None:
        """Connect again when the server closed this session's connection between commands
        (it closes admin connections that stay idle; see fedra.runtime.admin_port)."""
        if getattr(self._conn, "closed", False) is True and self.kit is not None:
            fresh = Session.connect(self.kit)
            self._conn = fresh._conn

    def _await_reply(self, cmd: str, request_id: str) -> tuple[Reply, FLModel | None]:
        """Receive until the reply to ``request_id``, skipping stale replies (after a timeout)."""
        deadline = None if self.reply_timeout is None else time.monotonic() + self.reply_timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            envelope = self._conn.recv(timeout=left)
            if envelope.kind != Reply.KIND:
                continue  # not an answer (the server sends nothing else): skipped
            try:
                reply = decode(envelope, TO_ADMIN)
            except BadMessage as exc:
                raise AdminError(f"malformed reply to '{cmd}': {exc}") from None
            if isinstance(reply, Reply) and reply.id == request_id:
                return reply, envelope.model

    @staticmethod
    def _unpack(cmd: str, answer: tuple[Reply, FLModel | None]) -> tuple[object, bytes | None]:
        reply, model = answer
        if not reply.ok:
            raise AdminError(reply.error or f"the server refused '{cmd}'", reply.hint or None)
        data = model_zip(model)
        if model is not None and data is None:
            raise AdminError(f"malformed reply to '{cmd}': its archive is not a byte array")
        return reply.data, data

    def _result(self, cmd: str, args: Args, kind: type[R], zip: bytes | None = None) -> R:
        """Run ``cmd`` with ``args`` (checked against its declaration first); the reply's data
        as ``kind``, the command's declared result type."""
        declared = ADMIN_COMMAND[cmd]
        if kind not in declared.results:
            raise TypeError(f"{cmd} does not answer {kind.__name__}")
        try:
            validate_args(declared, args)
        except BadArguments as exc:
            raise UsageError(str(exc)) from None
        data, _ = self._call(cmd, args, zip)
        try:
            return decode_result(cmd, data, kind)
        except BadReply as exc:
            raise AdminError(str(exc)) from None

    # ------------------------------------------------------------------ system

    def check_status(self, target: str = "server") -> ServerStatus | SitesStatus:
        """The server's status, jobs and sites (``server``: :class:`ServerStatus`), or each
        site's state (``client``: :class:`SitesStatus`)."""
        args: Args = {"target": _choice("target", target, STATUS_TARGETS)}
        if target == "client":
            return self._result("check_status", args, SitesStatus)
        return self._result("check_status", args, ServerStatus)

    def server_status(self) -> ServerStatus:
        """``check_status server``: the server's state, running jobs and registered sites."""
        return self._result("check_status", {"target": "server"}, ServerStatus)

    def sites_status(self) -> SitesStatus:
        """``check_status client``: every connected site the admin may see."""
        return self._result("check_status", {"target": "client"}, SitesStatus)

    def get_system_info(self) -> tuple[ServerStatus, SitesStatus]:
        """``check_status`` for both targets: (the server's status, the sites' status)."""
        return self.server_status(), self.sites_status()

    def sys_info(self, target: str = "server") -> SysInfo:
        """Host information (platform, Python, resources) of the server or a site."""
        return self._result("sys_info", {"target": _name("target", target)}, SysInfo)

    def remove_client(self, name: str) -> None:
        """Drop a site from the federation (it must register again)."""
        self._result("remove_client", {"name": _name("name", name)}, Done)

    def shutdown(self, target: str, names: list[str] | None = None) -> None:
        """Shut down the server, sites (all, or ``names``), or everything."""
        self._result("shutdown", _system_args(target, names), Done)

    def shutdown_system(self) -> None:
        """Shut down every site and the server (project admins)."""
        self._result("shutdown", _system_args("all", None), Done)

    def list_sp(self) -> SpState:
        """The servers the overseer knows (high availability): state, hot, last seen."""
        return _sp_view(self._overseer().state())

    def get_active_sp(self) -> ActiveSp:
        """The hot server and the service session id, from the overseer."""
        view = _sp_view(self._overseer().state())
        return ActiveSp(hot=view.hot, ssid=view.ssid)

    def promote_sp(self, name: str) -> SpState:
        """Make server ``name`` hot (project admins); the overseer's state after it."""
        return _sp_view(self._overseer().promote(_name("server", name)))

    def _overseer(self) -> OverseerClient:
        if self.kit is None or self.kit.overseer is None:
            raise AdminError(
                "this project has no overseer (high availability is not set up)",
                "add an overseer and a second server to project.yml and provision again",
            )
        from fedra.overseer import client_for_kit

        return client_for_kit(self.kit.root)

    def restart(self, target: str, names: list[str] | None = None) -> None:
        """Restart the server, sites (all, or ``names``), or everything."""
        self._result("restart", _system_args(target, names), Done)

    def tail(self, participant: str = "server", lines: int = 50, file: str = "log.txt") -> str:
        """The last ``lines`` lines of a participant's log (or of ``file``, as for :meth:`cat`)."""
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
            raise UsageError(f"lines must be a positive integer, got {lines!r}")
        args: Args = {"participant": _name("participant", participant), "lines": lines}
        if file != "log.txt":
            args["file"] = _name("file", file)
        return self._result("tail", args, FileText).text

    def cat(self, participant: str, file: str) -> str:
        """A file of a participant: ``log.txt`` (its log) or ``JOB_ID/PATH`` (a file of a job
        the admin may see); the server and the site refuse any other name."""
        args: Args = {"participant": _name("participant", participant), "file": _name("file", file)}
        return self._result("cat", args, FileText).text

    # ------------------------------------------------------------------ jobs

    def submit_job(self, folder: Path) -> str:
        """Validate the job folder (or zip of one) locally, upload it; the new job's id."""
        archive = _job_archive(Path(folder))
        args: Args = {}
        if self.kit is not None:
            from fedra.pki import sign_job

            _ca, cert_pem, key_pem = self.kit.credentials()
            # Signed by this admin: the server and every site check it before running it.
            args = {"signature": sign_job(archive, key_pem), "certificate": cert_pem.decode()}
        return self._result("submit_job", args, JobCreated, zip=archive).job_id

    def list_jobs(self, detailed: bool = False, prefix: str | None = None) -> list[JobInfo]:
        """Every job (or those whose id starts with ``prefix``), oldest first; with
        ``detailed``, each with its history, wait reason, failure and run info."""
        args: Args = {"detailed": bool(detailed), "prefix": prefix or None}
        return self._result("list_jobs", args, JobList).jobs

    def get_job(self, job_id: str) -> JobInfo:
        """One job in detail: status, history, what it waits for, why it failed."""
        return self._result("get_job", {"job_id": _job_id(job_id)}, JobInfo)

    def abort_job(self, job_id: str) -> AbortResult:
        """Abort a job; its id and status after the request."""
        return self._result("abort_job", {"job_id": _job_id(job_id)}, AbortResult)

    def clone_job(self, job_id: str) -> str:
        """Submit a copy of a job; returns the new job's id."""
        return self._result("clone_job", {"job_id": _job_id(job_id)}, JobCreated).job_id

    def delete_job(self, job_id: str) -> None:
        """Delete a finished job and its workspace from the server."""
        self._result("delete_job", {"job_id": _job_id(job_id)}, Done)

    def download_job(self, job_id: str, dest: Path | None = None) -> Path:
        """Download a job's folder and workspace into ``dest/<job_id>/``; return that folder.

        ``dest`` defaults to the kit's ``transfer`` folder. The zip is checked entry by entry
        before anything is written (see :mod:`fedra.admin.download`).
        """
        job_id = _job_id(job_id)
        if not _JOB_ID.match(job_id):
            raise UsageError(f"job id {job_id!r} cannot name a folder")
        base = Path(dest) if dest is not None else self._transfer_dir()
        target = base.expanduser() / job_id
        if target.exists() or target.is_symlink():
            raise ConfigError(f"cannot download into {target}: it already exists")
        data, archive = self._call("download_job", {"job_id": job_id})
        try:
            decode_result("download_job", data, Downloaded)
        except BadReply as exc:
            raise AdminError(str(exc)) from None
        if archive is None:
            raise AdminError(f"malformed reply to 'download_job': no zip for job {job_id}")
        extract_result(archive, target)
        return target

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5) -> JobInfo:
        """Poll the job until its status is final; return it. WaitTimeout after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job.status.is_final:
                return job
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout(job_id, job.status.value, timeout or 0.0)
            time.sleep(poll if deadline is None else min(poll, deadline - now))

    def show_stats(self, job_id: str) -> JobStats:
        """A running or finished job's progress: rounds, metrics, status."""
        return self._result("show_stats", {"job_id": _job_id(job_id)}, JobStats)

    def show_errors(self, job_id: str) -> JobErrors:
        """Why a job failed: the failure record (or None) and the errors sites reported."""
        return self._result("show_errors", {"job_id": _job_id(job_id)}, JobErrors)

    def _transfer_dir(self) -> Path:
        return self.kit.transfer_dir if self.kit is not None else Path(TRANSFER_DIR)


# ---------------------------------------------------------------------- argument checks


def _name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _job_id(value: object) -> str:
    return _name("job id", value)


def _choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _system_args(target: str, names: list[str] | None) -> Args:
    target = _choice("target", target, SYSTEM_TARGETS)
    if names and target != "client":
        raise UsageError(f"site names only go with target 'client', not {target!r}")
    return {"target": target, "names": [_name("site name", n) for n in names] if names else None}
