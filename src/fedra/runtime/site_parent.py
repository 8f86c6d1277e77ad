"""The site parent process (CP): connects out to the server, runs each job in its own process.

It only ever opens outbound connections. After the server goes away it reconnects forever,
with exponential backoff and jitter, logging each attempt at a sane rate. With an overseer
(high availability) it asks the overseer which server is hot, connects to that one, and
reconnects when the overseer's service session id (SSID) changes. Each job runs in a
site job process (CJ) in its own process group: an abort ends the whole group, training
scripts included (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedra.core import FedraError, trim_heap
from fedra.pki import TlsFiles
from fedra.runtime import protocol as p
from fedra.runtime.config import SiteKit
from fedra.runtime.isolation import prepare_job, reclaim
from fedra.runtime.messages import (
    BadMessage,
    JobRef,
    Request,
    ResultRefused,
    StartJob,
    TaskHeaders,
)
from fedra.runtime.procs import JobListener, end_group, parent_kit, parent_ready, spawn, tail
from fedra.runtime.site_resources import SiteResourceBook, load_site_resources
from fedra.scheduler import ResourceError
from fedra.transport import (
    ChannelClosed,
    Connection,
    LocalChannel,
    Spool,
    accept_channel,
    connect,
)
from fedra.wire import Envelope

log = logging.getLogger("fedra.site")
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
#: Longest wait for the server's go-ahead to send a big result (then it is sent anyway).
GRANT_WAIT_S = 300.0


@dataclass
class SiteJob:
    """A job whose site job process is alive."""

    job_id: str
    proc: subprocess.Popen[bytes]
    channel: LocalChannel
    log_path: Path
    stopping: bool = False


class SiteParent:
    """The long-lived site process."""

    def __init__(self, kit: SiteKit) -> None:
        self.kit = kit
        self.tls = TlsFiles.in_dir(kit.startup, "client").load()
        self.jobs: dict[str, SiteJob] = {}
        self.refused: dict[str, str] = {}  # job id -> why this site will not run it
        self.resources = SiteResourceBook(kit.name, load_site_resources(kit.root))
        self._spool = Spool(kit.root / "spool")
        self._grants: dict[str, threading.Event] = {}  # upload grant id -> its go-ahead
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._stopping = threading.Event()
        self.exit_code = 0
        self.overseer: Any = None
        if kit.overseer is not None:
            from fedra.runtime.ha import overseer_client

            self.overseer = overseer_client(kit.root, "client")
        #: The service session of the server connected to (with an overseer), else None.
        self.ssid: int | None = None

    # -- connection ---------------------------------------------------------------------
    def run(self) -> int:
        """Connect, serve, reconnect with backoff; until shut down."""
        backoff = BACKOFF_MIN
        attempts = 0
        while not self._stopping.is_set():
            target, server_name, ssid = self.kit.target, self.kit.server_name, None
            try:
                if self.overseer is not None:
                    target, server_name, ssid = self._hot_server()
                    _probe(target)  # a dead server fails here at once, not after gRPC's backoff
                ca, cert, key = self.tls
                conn = connect(
                    target,
                    ca_pem=ca,
                    cert_pem=cert,
                    key_pem=key,
                    server_name=server_name,
                    timeout=10.0,
                    spool=self._spool,  # big tasks go to disk, then to the job as files
                )
                peer = conn.peer
                if why := self.kit.roster.participant_refusal(
                    peer.name, "server", peer.fingerprint
                ):
                    conn.close()
                    raise FedraError(f"refused: {why}")
            except FedraError as exc:
                attempts += 1
                if attempts <= 3 or attempts % 10 == 0:
                    log.warning(
                        "cannot reach the server at %s (attempt %d): %s", target, attempts, exc
                    )
                self._stopping.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, BACKOFF_MAX if self.overseer is None else 1.0)
                continue
            attempts, backoff = 0, BACKOFF_MIN
            self.ssid = ssid
            where = f" (service session {ssid})" if ssid is not None else ""
            log.info("connected to the server %s at %s%s", server_name, target, where)
            self._serve(conn)
        self._end_all_jobs()
        return self.exit_code

    def _hot_server(self) -> tuple[str, str, int | None]:
        """(host:port, TLS name, SSID) of the hot server, from the overseer."""
        from fedra.overseer import OverseerError, ParticipantHeartbeat

        try:
            answer = self.overseer.heartbeat(ParticipantHeartbeat(self.kit.name))
        except OverseerError as exc:
            raise FedraError(f"cannot ask the overseer which server is hot: {exc}") from exc
        if answer.hot is None:
            raise FedraError("the overseer names no hot server yet")
        hot = answer.hot
        return f"{hot.host}:{hot.fl_port}", hot.name, answer.ssid

    def _follow_overseer(self, conn: Connection, stop: threading.Event) -> None:
        """Drop the connection when the overseer names a new service session."""
        from fedra.overseer import OverseerError, ParticipantHeartbeat

        interval = 2.0
        while not stop.wait(interval):
            try:
                answer = self.overseer.heartbeat(ParticipantHeartbeat(self.kit.name))
            except OverseerError:
                continue  # keep the current server while the overseer is away
            interval = answer.heartbeat_interval
            if answer.ssid != self.ssid:
                hot = answer.hot.name if answer.hot is not None else "none yet"
                log.warning(
                    "the service session changed (%s -> %s, hot server: %s): reconnecting",
                    self.ssid,
                    answer.ssid,
                    hot,
                )
                # Tell the old server first: it steps down instead of failing our jobs.
                with contextlib.suppress(ChannelClosed, FedraError, OSError):
                    conn.send(Envelope(p.SESSION, {"ssid": answer.ssid}))
                conn.close()
                return

    def _serve(self, conn: Connection) -> None:
        self._conn = conn
        stop_beat = threading.Event()
        threading.Thread(target=self._heartbeat, args=(conn, stop_beat), daemon=True).start()
        if self.overseer is not None:
            threading.Thread(
                target=self._follow_overseer, args=(conn, stop_beat), daemon=True
            ).start()
        try:
            hello = {"site": self.kit.name, "resources": self.resources.report()}
            conn.send(Envelope(p.HELLO, {**hello, "ssid": self.ssid}))
            while not self._stopping.is_set():
                env = conn.recv()
                relayed = env.model is not None
                try:
                    self._from_server(env)
                except (BadMessage, ValueError, TypeError) as exc:
                    log.warning("refused a malformed %r message from the server: %s", env.kind, exc)
                del env  # hold no model while waiting for the next message
                if relayed:
                    trim_heap()  # its frames stay in the reader thread's arena otherwise
        except (ChannelClosed, FedraError, OSError) as exc:
            if not self._stopping.is_set():
                log.warning("lost the server connection (%s); reconnecting", exc)
        finally:
            stop_beat.set()
            self._conn = None
            conn.close()

    def _heartbeat(self, conn: Connection, stop: threading.Event) -> None:
        while not stop.wait(self.kit.heartbeat_interval):
            try:
                beat = {"jobs": sorted(self.jobs), "resources": self.resources.report()}
                conn.send(Envelope(p.HEARTBEAT, beat))
            except (ChannelClosed, FedraError, OSError):
                return

    def _send(self, env: Envelope) -> None:
        conn = self._conn
        if conn is None:
            log.warning("dropped a %s message: not connected", env.kind)
            return
        try:
            conn.send(env)
        except (ChannelClosed, FedraError, OSError) as exc:
            log.warning("could not send %s: %s", env.kind, exc)

    def _from_server(self, env: Envelope) -> None:
        h = env.headers
        job_id = str(h.get("job_id", ""))
        if env.kind == p.WELCOME and self.ssid is not None and h.get("ssid") != self.ssid:
            raise FedraError(
                f"the server speaks for session {h.get('ssid')}, not {self.ssid}: stale"
            )
        if env.kind == p.START_JOB:
            start = StartJob.from_headers(h)
            self._start_job(start.job_id, start.sites, p.model_zip(env.model), h)
        elif env.kind == p.TASK:
            job_id = TaskHeaders.from_headers(h).job_id
            job = self.jobs.get(job_id)
            if job is None and job_id in self.refused:
                self._send(
                    Envelope(p.RESULT, {**h, "site": self.kit.name, "error": self.refused[job_id]})
                )
                return
            if job is None:
                self._send(
                    Envelope(
                        p.RESULT,
                        {**h, "site": self.kit.name, "error": f"job {job_id} is not running here"},
                    )
                )
                return
            try:
                job.channel.send(env)
            except (ChannelClosed, FedraError, OSError):
                self._send(
                    Envelope(
                        p.RESULT,
                        {**h, "site": self.kit.name, "error": "the site job process is gone"},
                    )
                )
        elif env.kind == p.UPLOAD_OK:
            event = self._grants.get(str(h.get("id")))
            if event is not None:
                event.set()
        elif env.kind in (p.ABORT_JOB, p.END_JOB):
            self._end_job(JobRef.from_headers(h).job_id, abort=env.kind == p.ABORT_JOB)
        elif env.kind == p.REQUEST:
            Request.from_headers(h)
            self._request(h)
        elif env.kind == p.RESULT_REFUSED:
            refused = ResultRefused.from_headers(h)
            log.warning(
                "the server refused our result for task %s of job %s: %s",
                refused.task_id,
                refused.job_id,
                refused.error,
            )

    # -- jobs ---------------------------------------------------------------------------
    def _start_job(
        self, job_id: str, sites: list[str], data: bytes | None, headers: dict[str, Any]
    ) -> None:
        from fedra.job.archive import unzip_job
        from fedra.runtime.authz import JobRefused, check_job

        if job_id in self.jobs:
            log.info("job %s restarted by the server: ending the old process", job_id)
            self._end_job(job_id, abort=True)
        if data is None or self.kit.name not in sites:
            self._send(
                Envelope(
                    p.JOB_STATE,
                    {"job_id": job_id, "state": "failed", "detail": "bad start_job message"},
                )
            )
            return
        root = self.kit.root / "jobs" / job_id
        try:
            job_dir = root / "job"
            if not job_dir.exists():
                unzip_job(data, job_dir)
            try:
                submitter = check_job(
                    self.kit.root,
                    self.kit.org,
                    self.tls[0],
                    data,
                    headers,
                    job_dir,
                    site=self.kit.name,
                )
                if why := self.kit.roster.admin_refusal(
                    submitter.name, submitter.org, submitter.role, submitter.fingerprint
                ):
                    raise JobRefused(f"its signer: {why}")
            except JobRefused as exc:
                self.resources.free(job_id)
                self.refused[job_id] = f"{self.kit.name} refuses job {job_id}: {exc}"
                log.warning("%s", self.refused[job_id])
                self._send(
                    Envelope(
                        p.JOB_STATE,
                        {"job_id": job_id, "state": "failed", "detail": self.refused[job_id]},
                    )
                )
                return
            log.info(
                "job %s submitted by %s (%s, %s): signature and policy checked",
                job_id,
                submitter.name,
                submitter.role,
                submitter.org,
            )
            env = self._allocate(job_id, job_dir)
            listener = JobListener("fedra-cj-", "cj.sock")
            launch = prepare_job(self.kit.root, root, Path(listener.folder), env)  # user, kit copy
            log_path = root / "log.txt"
            args = [
                "--job-id",
                job_id,
                "--job-dir",
                str(job_dir),
                "--workdir",
                str(root),
                "--socket",
                listener.path,
                "--site",
                self.kit.name,
                "--index",
                str(sites.index(self.kit.name)),
                "--num-sites",
                str(len(sites)),
                "--kit",
                str(launch.kit),
            ]
            proc = spawn("fedra.runtime.site_job", args, log_path, root, launch.env, launch.user)
            try:
                channel = accept_channel(listener, timeout=60.0, spool=self._spool, pass_files=True)
                ready = channel.recv(timeout=120.0)
            finally:
                listener.close()
            if ready.kind != p.READY:
                raise FedraError(str(ready.headers.get("detail", ready.kind)))
        except Exception as exc:
            self.resources.free(job_id)
            reclaim(root)
            log.error("job %s failed to start: %s", job_id, exc)
            self._send(
                Envelope(p.JOB_STATE, {"job_id": job_id, "state": "failed", "detail": str(exc)})
            )
            return
        job = SiteJob(job_id, proc, channel, log_path)
        with self._lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._serve_job, args=(job,), daemon=True).start()
        log.info("job %s started (pid %d)", job_id, proc.pid)
        self._send(Envelope(p.JOB_STATE, {"job_id": job_id, "state": "started"}))

    def _allocate(self, job_id: str, job_dir: Path) -> dict[str, str]:
        """Allocate what the job asks of this site; the environment for its processes."""
        import json

        from fedra.core.jobspec import META_FILE, parse_meta

        meta = parse_meta(json.loads((job_dir / META_FILE).read_text(encoding="utf-8")))
        spec = meta.resource_spec.get(self.kit.name, {})
        try:
            allocation = self.resources.allocate(job_id, spec)
        except ResourceError as exc:
            raise FedraError(f"{self.kit.name} cannot run job {job_id}: {exc}") from exc
        env = dict(os.environ)
        if self.resources.total.num_gpus:
            # Only this job's processes see its GPUs ('' hides them all from a CPU-only job).
            env["CUDA_VISIBLE_DEVICES"] = allocation.cuda_visible_devices()
        log.info("job %s: allocated %s", job_id, dict(allocation.amounts) or "nothing")
        return env

    def _serve_job(self, job: SiteJob) -> None:
        try:
            while True:
                env = job.channel.recv()
                if env.kind == p.RESULT and _model_bytes(env) > p.UPLOAD_ASK_BYTES:
                    env = self._wait_for_turn(env, job)
                if env.kind in (p.RESULT, p.LOG):
                    self._send(env)
                relayed = env.model is not None
                del env  # hold no model while waiting for the next message
                if relayed:
                    trim_heap()
        except (ChannelClosed, FedraError, OSError):
            pass
        code = end_group(job.proc, grace=2.0)
        if not job.stopping:  # else _end_job reclaimed it
            reclaim(job.log_path.parent)  # the job's folder: the parent's only again
        with self._lock:
            if self.jobs.get(job.job_id) is job:
                del self.jobs[job.job_id]
                self.resources.free(job.job_id)  # however the job ended
        if not job.stopping:
            detail = f"the site job process exited with code {code}\n{tail(job.log_path)}"
            log.error("job %s: %s", job.job_id, detail)
            self._send(
                Envelope(p.JOB_STATE, {"job_id": job.job_id, "state": "failed", "detail": detail})
            )

    def _wait_for_turn(self, env: Envelope, job: SiteJob) -> Envelope:
        """Ask the server before sending a big result, and wait for its go-ahead; the result
        then names the grant. Without an answer (another server, no connection, the job ends
        here, or none within GRANT_WAIT_S) the result goes as it is: the server's receive gate
        still orders it, or drops it for a job that ended."""
        conn = self._conn
        if conn is None:
            return env
        grant_id = uuid.uuid4().hex
        event = self._grants[grant_id] = threading.Event()
        try:
            conn.send(Envelope(p.MAY_UPLOAD, {"id": grant_id, "job_id": env.headers.get("job_id")}))
            deadline = time.monotonic() + GRANT_WAIT_S
            while not event.wait(0.5):
                gone = self._conn is not conn or self._stopping.is_set() or job.stopping
                if gone or time.monotonic() > deadline:
                    return env
        except (ChannelClosed, FedraError, OSError):
            return env
        finally:
            self._grants.pop(grant_id, None)
        return Envelope(env.kind, {**env.headers, "grant": grant_id}, env.model)

    def _end_job(self, job_id: str, abort: bool) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            self.resources.free(job_id)  # reserved for a job that never started here
            return
        job.stopping = True
        if not abort:
            try:
                job.channel.send(Envelope(p.STOP, {}))
                job.proc.wait(10.0)
            except (ChannelClosed, FedraError, OSError, subprocess.TimeoutExpired):
                pass
        end_group(job.proc)  # whatever is left of the job's process group
        # Here, not in _serve_job's thread: a restarted job's new process gets the folder next.
        reclaim(job.log_path.parent)
        job.channel.close()
        log.info("job %s %s", job_id, "aborted" if abort else "ended")

    def _end_all_jobs(self) -> None:
        for job_id in list(self.jobs):
            self._end_job(job_id, abort=True)

    # -- requests relayed from admins ---------------------------------------------------
    def _request(self, h: dict[str, Any]) -> None:
        """Answer a request relayed by the server. Any input, however malformed, gets a
        refusal reply and one log line: nothing here may end the site (H1)."""
        from fedra.runtime.confined import cat_text, parse_file, tail_text

        cmd = h.get("cmd")
        ok, data, error = True, None, None
        try:
            args = h.get("args") or {}
            if not isinstance(args, dict):
                raise FedraError(f"{cmd!r}: args must be an object")
            if cmd == "sys_info":
                data = {
                    "name": self.kit.name,
                    "pid": os.getpid(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "jobs": sorted(self.jobs),
                }
            elif cmd in ("tail", "cat"):
                # Confined here too: only log.txt or jobs/JOB_ID/..., never startup/ or local/.
                ref = parse_file(args.get("file", "log.txt"))
                root = self.kit.root
                parts = ref.parts if ref.job_id is None else ("jobs", ref.job_id, *ref.parts)
                if cmd == "cat":
                    data = {"text": cat_text(root, parts)}
                else:
                    lines = args.get("lines", 40)
                    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
                        raise FedraError(f"tail: lines must be a positive integer, got {lines!r}")
                    data = {"text": tail_text(root, parts, min(lines, 10_000))}
            elif cmd == "reserve":
                job_id = str(args.get("job_id", ""))
                spec = args.get("spec") or {}
                if not isinstance(spec, dict):
                    raise FedraError(f"reserve: spec must be an object, got {spec!r}")
                ttl = float(args.get("ttl", 60.0))
                try:
                    self.resources.reserve(job_id, spec, ttl)
                except ResourceError as exc:
                    raise FedraError(str(exc)) from exc
                data = self.resources.report()
            elif cmd == "free":
                job_id = str(args.get("job_id", ""))
                if job_id not in self.jobs:  # a running job frees when its process ends
                    self.resources.free(job_id)
                data = self.resources.report()
            elif cmd == "resources":
                data = {**self.resources.report(), "holders": self.resources.holders()}
            elif cmd in ("shutdown", "restart"):
                self.shutdown(p.RESTART_EXIT_CODE if cmd == "restart" else 0)
            else:
                raise FedraError(f"unknown request {cmd!r}")
        except FedraError as exc:
            ok, data, error = False, None, str(exc)
            log.warning("refused request %r from the server: %s", cmd, error)
        except Exception as exc:  # a malformed request is refused, never the end of the site
            ok, data, error = False, None, f"{cmd!r} failed: {type(exc).__name__}: {exc}"
            log.warning("refused request %r from the server: %s", cmd, error)
        if h.get("id"):
            self._send(Envelope(p.REPLY, {"id": h["id"], "ok": ok, "data": data, "error": error}))

    def shutdown(self, exit_code: int = 0) -> None:
        """Stop: end every job, close the connection."""
        self.exit_code = exit_code
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            conn.close()


def _model_bytes(env: Envelope) -> int:
    params = env.model.params if env.model is not None else None
    return sum(a.nbytes for a in params.values()) if params else 0


def _probe(target: str, timeout: float = 2.0) -> None:
    """Fail fast (FedraError) when nothing listens at ``host:port``."""
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise FedraError(f"nothing answers at {target}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m fedra.runtime.site_parent --kit DIR``."""
    root = parent_kit(argv, "Fedra site (parent process)")
    if isinstance(root, int):
        return root
    site = SiteParent(SiteKit.load(root))
    parent_ready(root, site.shutdown)
    return site.run()


if __name__ == "__main__":
    sys.exit(main())
