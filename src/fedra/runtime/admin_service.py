"""The admin service of the server parent: one handler per declared admin command.

Requests and replies follow docs/admin-commands.md: ``Envelope("admin", {"id", "cmd",
"args"})`` in, ``Envelope("reply", {"id", "ok", "data", "error", "hint"})`` out, archives as a
``zip`` uint8 array. Each request goes through the same steps, fail closed: the command must
be declared for the server (:mod:`fedra.core.admin_spec`) and have a handler here; its args
are checked against the declaration (wrong type, missing or undeclared: refused); the admin
(from the certificate) is authorized on exactly those checked args
(:mod:`fedra.runtime.admin_rights`); the handler gets exactly those args. Handlers raise
FedraError for anything the user got wrong; the reply then carries its one-line message, and
the server's log one line: who, what, why.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedra.core import ConfigError, FedraError, JobMeta, JobStatus, parse_meta
from fedra.core.admin_spec import ADMIN_COMMAND, BadArguments, server_command, validate_args
from fedra.runtime import protocol as p
from fedra.runtime.admin_rights import (
    SERVER_TARGET,
    Access,
    Caller,
    Owner,
    authorize,
    load_server_policy,
    operated_sites,
    owner_of,
)
from fedra.runtime.confined import (
    MAX_READ_BYTES,
    FileRef,
    cat_text,
    parse_file,
    regular_files,
    tail_text,
)
from fedra.store import JobRecord, meta_as_dict
from fedra.transport import ChannelClosed, Connection
from fedra.wire import Envelope

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent

log = logging.getLogger("fedra.admin")
Handler = Callable[["ServerParent", dict[str, Any], bytes | None, Access], tuple[Any, bytes | None]]
_HANDLERS: dict[str, Handler] = {}
MAX_TEXT = MAX_READ_BYTES


def command(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of a command declared in :mod:`fedra.core.admin_spec`."""

    def register(fn: Handler) -> Handler:
        declared = ADMIN_COMMAND.get(name)
        if declared is None or declared.served_by != "server":
            raise TypeError(f"admin command {name!r} has no server declaration")
        _HANDLERS[name] = fn
        return fn

    return register


def handlers() -> dict[str, Handler]:
    """The server's handlers by command name (for the declaration walk in the tests)."""
    return dict(_HANDLERS)


def serve_admin(server: ServerParent, conn: Connection) -> None:
    """Answer one admin connection's requests until it closes."""
    who = f"{conn.peer.name} ({conn.peer.role})"
    if conn.peer.role in ("client", "server", "overseer"):
        log.warning("refused %s on the admin port: not an admin certificate", who)
        conn.close()
        return
    log.info("admin %s connected", who)
    try:
        while True:
            env = conn.recv()
            if env.kind != p.ADMIN:
                continue
            conn.send(_answer(server, env, conn.peer))
    except (ChannelClosed, FedraError, OSError):
        log.info("admin %s disconnected", who)


class _ServerObjects:
    """The objects of admin commands, as this server knows them (for admin_rights)."""

    def __init__(self, server: ServerParent) -> None:
        self._server = server
        self.server_org = server.kit.org

    def job_owner(self, job_id: str) -> Owner:
        record = self._server.store.get(job_id)
        return owner_of(record.run_info, record.submitter)

    def site_org(self, name: str) -> str | None:
        handle = self._server.sites.get(name)
        return handle.org if handle is not None else None

    def site_names(self) -> list[str]:
        return sorted(self._server.sites)


def _answer(server: ServerParent, env: Envelope, peer: Caller) -> Envelope:
    """Validate, authorize, run one request; the reply. Every refusal is one log line."""
    h = env.headers
    req_id, cmd = h.get("id"), h.get("cmd")
    try:
        declared = server_command(cmd)
        args = validate_args(declared, h.get("args"))
        handler = _HANDLERS.get(declared.name)
        if handler is None:  # declared but not served here: fail closed
            raise BadArguments(f"{declared.name} is not served by the server")
        if not server.hot:
            error = FedraError(server.not_in_service())
            error.hint = "the console finds the hot server through the overseer by itself"
            raise error
        policy, source = load_server_policy(server.kit.root)
        access = Access(peer, policy, source)
        authorize(access, declared, args, _ServerObjects(server))
        data, blob = handler(server, args, p.model_zip(env.model), access)
    except FedraError as exc:
        log.warning(
            "refused %s from %s (%s, %s): %s",
            _one_line(cmd),
            peer.name,
            peer.role,
            peer.org,
            _one_line(str(exc)),
        )
        return Envelope(
            p.REPLY, {"id": req_id, "ok": False, "data": None, "error": str(exc), "hint": exc.hint}
        )
    except Exception as exc:
        log.exception("admin command %s of %s failed", _one_line(cmd), peer.name)
        return Envelope(
            p.REPLY,
            {
                "id": req_id,
                "ok": False,
                "data": None,
                "error": f"internal error: {exc}",
                "hint": None,
            },
        )
    model = p.zip_model(blob) if blob is not None else None
    return Envelope(
        p.REPLY, {"id": req_id, "ok": True, "data": data, "error": None, "hint": None}, model
    )


def _one_line(value: object, limit: int = 300) -> str:
    """``value`` for one log line: control characters escaped, cut short."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _job_id(args: dict[str, Any]) -> str:
    return str(args["job_id"])


def job_dict(server: ServerParent, record: JobRecord, detailed: bool) -> dict[str, Any]:
    """A job as the admin sees it."""
    end = record.history[-1].at if record.status.is_final else time.time()
    out: dict[str, Any] = {
        "job_id": record.job_id,
        "name": record.name,
        "status": record.status.value,
        "submitter": record.submitter,
        "submitted_at": record.submitted_at,
        "duration_s": round(end - record.submitted_at, 3),
    }
    if detailed:
        out["history"] = [
            {"status": c.status.value, "at": c.at, "reason": c.reason} for c in record.history
        ]
        out["waiting"] = server.waiting.get(record.job_id) if not record.status.is_final else None
        out["failure"] = record.failure
        out["run_info"] = record.run_info
    return out


def _may_view(access: Access, record: JobRecord) -> bool:
    return access.may_job("view", owner_of(record.run_info, record.submitter))


def _may_view_site(server: ServerParent, access: Access, name: str) -> bool:
    handle = server.sites.get(name)
    return access.may_participant("view", handle.org if handle is not None else None)


@command("check_status")
def _check_status(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, access: Access
) -> tuple[Any, None]:
    now = time.monotonic()
    if args["target"] == "client":
        sites = [
            {
                "name": h.name,
                "org": h.org,
                "connected": True,
                "last_seen_s": round(now - h.last_seen, 3),
                "jobs": h.jobs,
                "resources": {
                    "total": h.total.as_dict() if h.total else None,
                    "free": h.free.as_dict() if h.free else None,
                },
            }
            for h in sorted(server.sites.values(), key=lambda h: h.name)
            if access.may_participant("view", h.org)
        ]
        return {"sites": sites}, None
    records = [server.store.get(j) for j in list(server.running)]
    jobs = [
        {"job_id": r.job_id, "name": r.name, "status": "RUNNING"}
        for r in records
        if _may_view(access, r)
    ]
    return {
        "status": "started",
        "start_time": server.started,
        "jobs": jobs,
        "sites": [s for s in sorted(server.sites) if _may_view_site(server, access, s)],
    }, None


def check_submission(
    server: ServerParent, blob: bytes, args: dict[str, Any], user: str
) -> dict[str, Any]:
    """Verify the admin's signature of a job archive; the record of who submitted it."""
    from fedra.pki import CertificateError, verify_job

    signature, certificate = args.get("signature"), args.get("certificate")
    if not isinstance(signature, str) or not isinstance(certificate, str):
        error = ConfigError("the job is not signed: submit it with fedra (admin Session/CLI)")
        error.hint = "jobs are signed with the admin kit's key; unsigned jobs are refused"
        raise error
    try:
        signer = verify_job(blob, signature, certificate.encode(), server.ca_pem)
    except CertificateError as exc:
        raise ConfigError(f"job signature refused: {exc}") from exc
    if signer.name != user:
        raise ConfigError(f"the job is signed by {signer.name}, but {user} submits it")
    return {
        "name": signer.name,
        "org": signer.org,
        "role": signer.role,
        "signature": signature,
        "certificate": certificate,
    }


def check_resources(server: ServerParent, meta: JobMeta) -> None:
    """Refuse a resource_spec no site could ever hold (checked against connected sites)."""
    from fedra.scheduler import ResourceError, shortfall

    for site, spec in meta.resource_spec.items():
        if server.kit.sites is not None and site not in server.kit.sites:
            raise ConfigError(f"resource_spec names {site!r}, which is not a site of this project")
        handle = server.sites.get(site)
        if handle is None or handle.total is None:
            continue  # checked by the scheduler once the site connects
        try:
            reason = shortfall(site, spec, handle.total)
        except ResourceError as exc:
            raise ConfigError(f"resource_spec: {exc}") from exc
        if reason is not None:
            raise ConfigError(
                f"the job can never run: resource_spec asks {site} for more than it has "
                f"({reason} when idle)"
            )


def _owner(access: Access) -> dict[str, str]:
    caller = access.caller
    return {"name": caller.name, "org": caller.org, "role": caller.role}


@command("submit_job")
def _submit(
    server: ServerParent, args: dict[str, Any], blob: bytes | None, access: Access
) -> tuple[Any, None]:
    import json
    import tempfile

    from fedra.job import load_job
    from fedra.job.archive import unzip_job

    user = access.caller.name
    if blob is None:
        raise ConfigError("submit_job needs the job folder (zipped)")
    submission = check_submission(server, blob, args, user)
    with tempfile.TemporaryDirectory(prefix="fedra-submit-") as tmp:
        folder = Path(tmp) / "job"
        try:
            # The transport refused a bigger upload from its declared size; this bounds the
            # zip (and its junk), load_job the arrays of its .npz files.
            unzip_job(blob, folder, max_archive_bytes=server.kit.max_job_bytes)
            job = load_job(folder)  # fully validated before anything is stored
        except FedraError as exc:
            log.warning("refused a job of %d bytes from %s: %s", len(blob), user, exc)
            raise
        meta = json.loads((folder / "meta.json").read_text())
    check_resources(server, job.meta)
    record = server.store.create(meta, blob, submitter=user)
    server.store.update_run_info(record.job_id, {"submission": submission, "owner": _owner(access)})
    log.info("job %s (%s) submitted by %s (signature checked)", record.job_id, job.meta.name, user)
    server.wake()
    return {"job_id": record.job_id}, None


@command("list_jobs")
def _list(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, access: Access
) -> tuple[Any, None]:
    records = [r for r in server.store.list(prefix=args["prefix"]) if _may_view(access, r)]
    return {"jobs": [job_dict(server, r, args["detailed"]) for r in records]}, None


@command("get_job")
def _get(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    return job_dict(server, server.store.get(_job_id(args)), True), None


@command("abort_job")
def _abort(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, access: Access
) -> tuple[Any, None]:
    job_id = _job_id(args)
    status = server.abort(job_id, f"aborted by {access.caller.name}")
    return {"job_id": job_id, "status": status.value}, None


@command("clone_job")
def _clone(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, access: Access
) -> tuple[Any, None]:
    record = server.store.get(_job_id(args))
    user = access.caller.name
    clone = server.store.create(
        meta_as_dict(record.meta), server.store.job_zip(record.job_id), user
    )
    # The archive is the same bytes: the original signature still vouches for its content
    # (the sites check it); the clone belongs to, and is recorded as submitted by, the cloner.
    submission = record.run_info.get("submission")
    signer = submission.get("name") if isinstance(submission, dict) else None
    info: dict[str, Any] = {
        "owner": _owner(access),
        "cloned_from": {"job_id": record.job_id, "signer": signer},
    }
    if submission is not None:
        info["submission"] = submission
    server.store.update_run_info(clone.job_id, info)
    log.info(
        "job %s cloned from %s by %s (signed by %s)", clone.job_id, record.job_id, user, signer
    )
    server.wake()
    return {"job_id": clone.job_id}, None


@command("delete_job")
def _delete(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    server.store.delete(_job_id(args))
    return {}, None


@command("download_job")
def _download(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, bytes]:
    job_id = _job_id(args)
    server.store.get(job_id)
    buffer = io.BytesIO()
    count, skipped = 0, list[str]()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, fd in regular_files(server.store.workspace(job_id), skipped):
            with os.fdopen(fd, "rb") as src, zf.open(name, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)  # what was checked is what is read
            count += 1
    for entry in skipped:
        log.warning("download_job %s: skipped %s", job_id, entry)
    return {"files": count}, buffer.getvalue()


@command("show_stats")
def _stats(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    record = server.store.get(_job_id(args))
    return {
        "status": record.status.value,
        "rounds": record.run_info.get("rounds", []),
        "sites": record.run_info.get("sites", []),
    }, None


@command("show_errors")
def _errors(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    record = server.store.get(_job_id(args))
    errors = [
        c.reason
        for c in record.history
        if c.status in (JobStatus.FINISHED_EXECUTION_EXCEPTION, JobStatus.FAILED_TO_RUN)
    ]
    return {"failure": record.failure, "errors": errors}, None


def _server_file(server: ServerParent, ref: FileRef) -> tuple[Path, tuple[str, ...]]:
    """Where the server's file ``ref`` lies: (a folder, the parts under it)."""
    if ref.job_id is None:
        return server.kit.root, ref.parts
    return server.store.workspace(ref.job_id), ref.parts


def _relay(server: ServerParent, site: str, cmd: str, args: dict[str, Any]) -> Any:
    if site not in server.sites:
        raise ConfigError(f"site {site!r} is not connected")
    return server.ask(site, cmd, args)


@command("tail")
def _tail(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    participant, lines, ref = args["participant"], args["lines"], parse_file(args["file"])
    if participant != SERVER_TARGET:
        return _relay(server, participant, "tail", {"lines": lines, "file": ref.name}), None
    return {"text": tail_text(*_server_file(server, ref), lines)}, None


@command("cat")
def _cat(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    participant, ref = args["participant"], parse_file(args["file"])
    if participant != SERVER_TARGET:
        return _relay(server, participant, "cat", {"file": ref.name}), None
    return {"text": cat_text(*_server_file(server, ref))}, None


@command("sys_info")
def _sys_info(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    import platform

    target = args["target"]
    if target != SERVER_TARGET:
        return _relay(server, target, "sys_info", {}), None
    return {
        "name": server.kit.name,
        "pid": os.getpid(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "fed_port": server.fed_port,
        "admin_port": server.admin_port,
    }, None


@command("remove_client")
def _remove(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    for name in operated_sites("remove_client", args, sorted(server.sites)):
        handle = server.sites.get(name)
        if handle is None:
            raise ConfigError(f"site {name!r} is not connected")
        handle.conn.close()
    return {}, None


def _operate(server: ServerParent, cmd: str, args: dict[str, Any], exit_code: int) -> None:
    """Send ``cmd`` to the sites and/or stop the server: exactly the authorized targets."""
    for name in operated_sites(cmd, args, sorted(server.sites)):
        if name == SERVER_TARGET:
            threading.Timer(0.5, server.shutdown, args=(exit_code,)).start()
        else:
            server.send_to_site(name, Envelope(p.REQUEST, {"id": "", "cmd": cmd}))


@command("shutdown")
def _shutdown(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    _operate(server, "shutdown", args, 0)
    return {}, None


@command("restart")
def _restart(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _a: Access
) -> tuple[Any, None]:
    _operate(server, "restart", args, p.RESTART_EXIT_CODE)
    return {}, None


def meta_sites(meta: dict[str, Any]) -> str:
    """A short description of where a job deploys (for messages)."""
    parsed = parse_meta(meta)
    return ", ".join(f"{a}: {', '.join(t)}" for a, t in parsed.deploy_map.items())
