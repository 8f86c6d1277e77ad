"""The admin service of the server parent: one handler per admin command.

Requests and replies follow docs/admin-commands.md: ``Envelope("admin", {"id", "cmd",
"args"})`` in, ``Envelope("reply", {"id", "ok", "data", "error", "hint"})`` out, archives as a
``zip`` uint8 array. Handlers raise FedraError for anything the user got wrong; the reply
then carries its one-line message.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedra.core import ConfigError, FedraError, JobMeta, JobStatus, parse_meta
from fedra.runtime import protocol as p
from fedra.runtime.procs import tail
from fedra.store import JobRecord, meta_as_dict
from fedra.transport import ChannelClosed, Connection
from fedra.wire import Envelope

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent

log = logging.getLogger("fedra.admin")
Handler = Callable[["ServerParent", dict[str, Any], bytes | None, str], tuple[Any, bytes | None]]
_HANDLERS: dict[str, Handler] = {}
MAX_TEXT = 256 * 1024


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return register


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
            conn.send(_answer(server, env, conn.peer.name, conn.peer))
    except (ChannelClosed, FedraError, OSError):
        log.info("admin %s disconnected", who)


def _authorize(server: ServerParent, peer: Any, cmd: str, args: dict[str, Any]) -> None:
    """Refuse a command the admin's role does not allow (NotAllowed, one line)."""
    from fedra.runtime.admin_rights import RIGHT_OF, check, load_server_policy

    policy, source = load_server_policy(server.kit.root)
    job_id = args.get("job_id")
    if cmd in RIGHT_OF and RIGHT_OF[cmd] in ("manage_job", "download_job") and job_id:
        record = server.store.get(str(job_id))
        owner = dict(record.run_info.get("submission") or {"name": record.submitter})
        check(policy, source, peer, cmd, owner=owner)
    elif cmd in ("remove_client", "shutdown", "restart"):
        names = args.get("names") or ([args["name"]] if args.get("name") else sorted(server.sites))
        orgs = [server.sites[n].org for n in names if n in server.sites]
        if cmd != "remove_client" and args.get("target") in ("server", "all"):
            orgs.append(server.kit.org)
        check(policy, source, peer, cmd, site_orgs=orgs or [server.kit.org])
    else:
        check(policy, source, peer, cmd)


def _answer(server: ServerParent, env: Envelope, user: str, peer: Any = None) -> Envelope:
    h = env.headers
    req_id, cmd = h.get("id"), str(h.get("cmd", ""))
    args = h.get("args") or {}
    handler = _HANDLERS.get(cmd)
    try:
        if handler is None:
            raise ConfigError(f"unknown command '{cmd}'")
        if not isinstance(args, dict):
            raise ConfigError("args must be an object")
        if not server.hot:
            error = FedraError(server.not_in_service())
            error.hint = "the console finds the hot server through the overseer by itself"
            raise error
        if peer is not None:
            _authorize(server, peer, cmd, args)
        data, blob = handler(server, args, p.model_zip(env.model), user)
    except FedraError as exc:
        return Envelope(
            p.REPLY, {"id": req_id, "ok": False, "data": None, "error": str(exc), "hint": exc.hint}
        )
    except Exception as exc:
        log.exception("admin command %s failed", cmd)
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


def _job_id(args: dict[str, Any]) -> str:
    job_id = args.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ConfigError(
            "missing job id",
        )
    return job_id


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


@command("check_status")
def _check_status(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    target = args.get("target", "server")
    now = time.monotonic()
    if target == "client":
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
        ]
        return {"sites": sites}, None
    if target != "server":
        raise ConfigError(f"check_status: target must be 'server' or 'client', got {target!r}")
    jobs = [
        {"job_id": j, "name": server.store.get(j).name, "status": "RUNNING"} for j in server.running
    ]
    return {
        "status": "started",
        "start_time": server.started,
        "jobs": jobs,
        "sites": sorted(server.sites),
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


@command("submit_job")
def _submit(
    server: ServerParent, args: dict[str, Any], blob: bytes | None, user: str
) -> tuple[Any, None]:
    import json
    import tempfile

    from fedra.job import load_job
    from fedra.job.archive import unzip_job

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
    server.store.update_run_info(record.job_id, {"submission": submission})
    log.info("job %s (%s) submitted by %s (signature checked)", record.job_id, job.meta.name, user)
    server.wake()
    return {"job_id": record.job_id}, None


@command("list_jobs")
def _list(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    prefix = args.get("prefix") or None
    records = server.store.list(prefix=prefix)
    return {"jobs": [job_dict(server, r, bool(args.get("detailed"))) for r in records]}, None


@command("get_job")
def _get(server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str) -> tuple[Any, None]:
    return job_dict(server, server.store.get(_job_id(args)), True), None


@command("abort_job")
def _abort(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, user: str
) -> tuple[Any, None]:
    job_id = _job_id(args)
    status = server.abort(job_id, f"aborted by {user}")
    return {"job_id": job_id, "status": status.value}, None


@command("clone_job")
def _clone(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, user: str
) -> tuple[Any, None]:
    record = server.store.get(_job_id(args))
    clone = server.store.create(
        meta_as_dict(record.meta), server.store.job_zip(record.job_id), user
    )
    # The archive is the same bytes: the original signature (and signer) still vouch for it.
    submission = record.run_info.get("submission")
    if submission is not None:
        server.store.update_run_info(clone.job_id, {"submission": submission})
    server.wake()
    return {"job_id": clone.job_id}, None


@command("delete_job")
def _delete(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    server.store.delete(_job_id(args))
    return {}, None


@command("download_job")
def _download(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, bytes]:
    job_id = _job_id(args)
    server.store.get(job_id)
    root = server.store.workspace(job_id)
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(root).as_posix())
                count += 1
    return {"files": count}, buffer.getvalue()


@command("show_stats")
def _stats(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    record = server.store.get(_job_id(args))
    return {
        "status": record.status.value,
        "rounds": record.run_info.get("rounds", []),
        "sites": record.run_info.get("sites", []),
    }, None


@command("show_errors")
def _errors(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    record = server.store.get(_job_id(args))
    errors = [
        c.reason
        for c in record.history
        if c.status in (JobStatus.FINISHED_EXECUTION_EXCEPTION, JobStatus.FAILED_TO_RUN)
    ]
    return {"failure": record.failure, "errors": errors}, None


def _participant_file(server: ServerParent, participant: str, name: str) -> Path:
    if participant != "server":
        raise ConfigError("only the server's files can be read here; ask the site with sys_info")
    root = server.kit.root.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ConfigError(f"no file {name!r} in the server's folder")
    return path


def _relay(server: ServerParent, site: str, cmd: str, args: dict[str, Any]) -> Any:
    if site not in server.sites:
        raise ConfigError(f"site {site!r} is not connected")
    return server.ask(site, cmd, args)


@command("tail")
def _tail(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    participant = str(args.get("participant", "server"))
    lines = int(args.get("lines", 40))
    if participant != "server":
        return _relay(server, participant, "tail", {"lines": lines}), None
    return {"text": tail(_participant_file(server, "server", "log.txt"), lines)}, None


@command("cat")
def _cat(server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str) -> tuple[Any, None]:
    participant = str(args.get("participant", "server"))
    name = str(args.get("file", "log.txt"))
    if participant != "server":
        return _relay(server, participant, "cat", {"file": name}), None
    path = _participant_file(server, participant, name)
    return {"text": path.read_bytes()[-MAX_TEXT:].decode("utf-8", errors="replace")}, None


@command("sys_info")
def _sys_info(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    import os
    import platform

    target = str(args.get("target", "server"))
    if target != "server":
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
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    name = str(args.get("name", ""))
    handle = server.sites.get(name)
    if handle is None:
        raise ConfigError(f"site {name!r} is not connected")
    handle.conn.close()
    return {}, None


def _targets(server: ServerParent, args: dict[str, Any]) -> list[str]:
    names = args.get("names") or sorted(server.sites)
    return [str(n) for n in names]


@command("shutdown")
def _shutdown(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    target = args.get("target")
    if target not in ("client", "server", "all"):
        raise ConfigError("shutdown: target must be client, server or all")
    if target in ("client", "all"):
        for site in _targets(server, args):
            server.send_to_site(site, Envelope(p.REQUEST, {"id": "", "cmd": "shutdown"}))
    if target in ("server", "all"):
        threading.Timer(0.5, server.shutdown).start()
    return {}, None


@command("restart")
def _restart(
    server: ServerParent, args: dict[str, Any], _b: bytes | None, _u: str
) -> tuple[Any, None]:
    target = args.get("target")
    if target not in ("client", "server", "all"):
        raise ConfigError("restart: target must be client, server or all")
    if target in ("client", "all"):
        for site in _targets(server, args):
            server.send_to_site(site, Envelope(p.REQUEST, {"id": "", "cmd": "restart"}))
    if target in ("server", "all"):
        threading.Timer(0.5, server.shutdown, args=(p.RESTART_EXIT_CODE,)).start()
    return {}, None


def meta_sites(meta: dict[str, Any]) -> str:
    """A short description of where a job deploys (for messages)."""
    parsed = parse_meta(meta)
    return ", ".join(f"{a}: {', '.join(t)}" for a, t in parsed.deploy_map.items())
