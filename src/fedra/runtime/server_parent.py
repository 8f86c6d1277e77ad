"""The server parent process (SP): site registry, job store, scheduler, admin service, router.

One SP per federation. Sites connect to its FL port, admin clients to its admin port (both
gRPC with mutual TLS). Each running job gets a server job process (SJ) of its own; the SP
routes tasks from the SJ to the sites and results back. A crash of an SJ fails that job with
the reason recorded, never the SP. Jobs still RUNNING when the SP stops (or is killed) are
resumed from their last snapshot when it starts again.

With an overseer (high availability, see :mod:`fedra.runtime.ha`) the SP starts cold and acts
only while the overseer gives it the lease; the job store is then shared with the standby
servers and fenced with the service session id.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fedra.core import FedraError, InvalidTransition, JobStatus, trim_heap
from fedra.pki import TlsFiles
from fedra.runtime import protocol as p
from fedra.runtime.admin_port import AdminPort
from fedra.runtime.config import ServerKit
from fedra.runtime.intake import Intake
from fedra.runtime.isolation import reclaim
from fedra.runtime.messages import BadMessage, text_list
from fedra.runtime.peers import SessionClaims, admit_admin, admit_site
from fedra.runtime.procs import end_group, parent_kit, parent_ready, tail
from fedra.runtime.server_launch import start_server_job
from fedra.runtime.server_records import RunningJob, SiteHandle
from fedra.scheduler import QueuedJob, Wait, schedule
from fedra.server import RunStore
from fedra.store import JobRecord, JobStore, StaleSession, open_store
from fedra.transport import (
    ChannelClosed,
    Connection,
    SharedBody,
    Spool,
    TransportServer,
)
from fedra.wire import Envelope, peek_frame

log = logging.getLogger("fedra.server")
FINAL = {s for s in JobStatus if s.is_final}
#: Seconds a site holds resources reserved for a job that the server is about to start.
RESERVATION_TTL_S = 60.0
#: Seconds to wait for a site's answer to a request (reserve, free, sys_info ...).
REQUEST_TIMEOUT_S = 15.0
#: Site messages above this many bytes wait their turn (see ServerParent._receive_gate).
GATED_MESSAGE_BYTES = p.UPLOAD_ASK_BYTES
#: Sites a big model is sent to at the same time (the others wait for a turn).
FANOUT = 4


class ServerParent:
    """The long-lived server process."""

    def __init__(
        self, kit: ServerKit, *, fed_port: int | None = None, admin_port: int | None = None
    ) -> None:
        self.kit = kit
        self.started = time.time()
        self._base_store = open_store(kit.job_store, kit.root / "store")
        #: Where jobs are recorded; fenced with the session id while hot under an overseer.
        self.store: JobStore = self._base_store
        #: Whether this server acts (always, without an overseer) and its session id.
        self.hot = kit.overseer is None
        self.ssid: int | None = None
        self.ha: Any = None  # the HaAgent, with an overseer
        #: Sites' claims of a newer session: logged, and they make the agent ask the overseer.
        self._claims = SessionClaims(lambda why: self.ha.ask_now(why) if self.ha else None)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self.sites: dict[str, SiteHandle] = {}
        self.running: dict[str, RunningJob] = {}
        self.waiting: dict[str, str] = {}  # job id -> why it waits
        self._to_resume: set[str] = set()
        self._requests: dict[str, tuple[threading.Event, list[Envelope]]] = {}
        self._stray_gate = threading.Semaphore(1)
        self._granted: set[str] = set()  # upload grants outstanding, all sites
        #: Checks what sites send for their jobs (results, logs, upload requests, job states).
        self._intake = Intake(self)
        self._stopping = threading.Event()
        self.exit_code = 0
        ca, cert, key = TlsFiles.in_dir(kit.startup, "server").load()
        self.ca_pem = ca
        self._spool = Spool(kit.root / "spool")
        self._fed = TransportServer(
            kit.host,
            kit.fed_port if fed_port is None else fed_port,
            ca_pem=ca,
            cert_pem=cert,
            key_pem=key,
            on_connect=self._site_connected,
            # Big results go to disk here and are handed to the job process as files.
            spool=self._spool,
            receive_window=kit.receive_window,
        )
        # Limits before trust: message sizes, connections per admin, idle timeout.
        self._admin_port = AdminPort(kit.root, self._serve_admin, max_job_bytes=kit.max_job_bytes)
        self._admin = TransportServer(
            kit.host,
            kit.admin_port if admin_port is None else admin_port,
            ca_pem=ca,
            cert_pem=cert,
            key_pem=key,
            on_connect=self._admin_connected,
            spool=self._admin_port.spool,
        )
        self.fed_port = 0
        self.admin_port = 0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the ports, pick up interrupted jobs, start the scheduler."""
        if self.hot:
            self._pick_up_interrupted()
        self.fed_port = self._fed.start()
        self.admin_port = self._admin.start()
        log.info(
            "server %s listening: FL port %d, admin port %d",
            self.kit.name,
            self.fed_port,
            self.admin_port,
        )
        threading.Thread(target=self._schedule_loop, name="scheduler", daemon=True).start()
        if self.kit.overseer is not None:
            from fedra.runtime.ha import HaAgent, overseer_client

            self.ha = HaAgent(
                self,
                overseer_client(self.kit.root, "server"),
                name=self.kit.name,
                host=self.kit.public_host,
                fl_port=self.fed_port,
                admin_port=self.admin_port,
            )
            log.info("standing by: the overseer decides when this server is hot")
            self.ha.start()

    def _pick_up_interrupted(self) -> None:
        for record in self.store.list(statuses={JobStatus.RUNNING, JobStatus.DISPATCHED}):
            self._to_resume.add(record.job_id)
            log.info(
                "job %s was %s when the last hot server stopped: it will resume",
                record.job_id,
                record.status.value,
            )

    # -- high availability --------------------------------------------------------------
    def store_ssid(self) -> int:
        """The newest session id the shared store has seen (0: none)."""
        try:
            return int(self._base_store.current_ssid())
        except Exception as exc:  # a store that cannot be read now: report none
            log.warning("cannot read the store's session id: %s", exc)
            return 0

    def become_hot(self, ssid: int) -> bool:
        """Take over the shared store as session ``ssid`` and resume its running jobs."""
        try:
            self._base_store.claim_ssid(ssid)
        except StaleSession as exc:
            log.error("not taking over: %s", exc)
            return False
        with self._lock:
            self.store = self._base_store.fenced(ssid)
            self.ssid = ssid
            self._pick_up_interrupted()
            self.hot = True
            self._wake.notify_all()
        log.info("this server is hot now (service session %d)", ssid)
        return True

    def step_down(self, reason: str) -> None:
        """Stop acting: end the job processes (jobs stay RUNNING in the store), drop sites."""
        with self._lock:
            if not self.hot:
                return
            self.hot = False
            jobs = list(self.running.values())
            sites = list(self.sites.values())
            self._to_resume.clear()
            self.waiting.clear()
        log.warning("stepping down (%s): ending %d job processes", reason, len(jobs))
        for job in jobs:
            job.detached = True
        for job in jobs:
            end_group(job.proc, grace=2.0)
            reclaim(job.log_path.parent)  # it resumes with a new kit copy, here or elsewhere
        for handle in sites:
            handle.conn.close()

    def not_in_service(self) -> str:
        """Why a cold server refuses: and where the hot one is, when known."""
        hot = self.ha.hot_server() if self.ha is not None else None
        where = f"the hot server is {hot}" if hot and hot != self.kit.name else "no hot server yet"
        return f"{self.kit.name} is not in service ({where}); ask the overseer"

    def wait(self) -> int:
        """Block until shutdown; return the exit code."""
        self._stopping.wait()
        return self.exit_code

    def shutdown(self, exit_code: int = 0) -> None:
        """Stop serving. Running jobs stay RUNNING in the store and resume at the next start."""
        if self._stopping.is_set():
            return
        log.info("server shutting down")
        self.exit_code = exit_code
        self._stopping.set()
        with self._lock:
            jobs = list(self.running.values())
            self._wake.notify_all()
        for job in jobs:
            job.detached = True
            end_group(job.proc, grace=2.0)
            reclaim(job.log_path.parent)  # its kit copy goes; it resumes with a new one
        if self.ha is not None:
            self.ha.stop(release=True)  # the standby may take over at once
        self._fed.stop(0.5)
        self._admin.stop(0.5)
        self._base_store.close()

    # -- sites --------------------------------------------------------------------------
    def _site_connected(self, conn: Connection) -> None:
        peer = conn.peer
        if peer.role != "client":
            log.warning("refused %s on the FL port: role %r is not a site", peer.name, peer.role)
            raise FedraError(f"refused: {peer.name} has a {peer.role!r} certificate, not a site's")
        if not self.hot:
            raise FedraError(self.not_in_service())
        handle = SiteHandle(peer.name, peer.org, conn)
        # A site of the project, not revoked, one live connection (fedra.runtime.peers).
        admit_site(self.sites, self._lock, handle, self.kit)
        name = peer.name
        conn.set_gate(lambda total, head: self._receive_gate(total, head, name))
        threading.Thread(
            target=self._serve_site, args=(handle,), name=f"site-{peer.name}", daemon=True
        ).start()

    def _receive_gate(self, total: int, head: bytes, site: str = "") -> threading.Semaphore | None:
        """The slot a site's message holds while it is received and passed on: one big result
        per job at a time (other big ones: one stray slot), the rest wait in flow control; it
        is released when the site's thread asks for its next message (or the stream ends).
        A big result of ``site`` that does not answer an outstanding task of it, or does not
        fit the task's model, is refused from its header (MessageRefused): never received."""
        if total <= GATED_MESSAGE_BYTES:
            return None
        found = peek_frame(head)
        if found is not None and site:
            self._intake.gate(site, found, total, len(head))
        if found is not None and found.kind == p.RESULT:
            if str(found.headers.get("grant")) in self._granted:
                return None  # it holds its job's slot already (see _grant)
            job = self.running.get(str(found.headers.get("job_id")))
            if job is not None:
                return job.results_gate
        return self._stray_gate

    def _serve_site(self, handle: SiteHandle) -> None:
        name, conn = handle.name, handle.conn
        with self._lock:
            rejoin = [j for j in self.running.values() if name in j.sites]
        log.info("site %s (%s) connected", name, conn.peer.org)
        try:
            conn.send(Envelope(p.WELCOME, {"server": self.kit.name, "ssid": self.ssid}))
            for job in rejoin:
                self._send_start(job, [name])
            self._sites_changed()
            while True:
                env = conn.recv()
                handle.last_seen = time.monotonic()
                try:
                    self._from_site(handle, env)
                except (BadMessage, ValueError, TypeError) as exc:
                    log.warning(
                        "refused a malformed %r message from site %s: %s", env.kind, name, exc
                    )
                relayed = env.model is not None
                del env  # hold no model while waiting for the next message
                if relayed:
                    trim_heap()  # the frames it came in stay in this thread's arena otherwise
        except (ChannelClosed, FedraError, OSError) as exc:
            log.info("site %s disconnected (%s)", name, exc)
        finally:
            conn.close()  # nobody reads it any more (and it gives back its receive slot)
            for grant_id in list(handle.grants):
                self._end_grant(handle, grant_id)
            with self._lock:
                if self.sites.get(name) is handle:
                    del self.sites[name]
                    lost = [j for j in self.running.values() if name in j.sites]
                else:
                    lost = []
            for job in lost:
                self._to_job(job, Envelope("lost", {"site": name}))
            self._sites_changed()

    def _from_site(self, handle: SiteHandle, env: Envelope) -> None:
        h = env.headers
        # A site's word on the session never makes this server step down: it asks the
        # overseer, whose answer decides (HaAgent), at most every few seconds.
        if env.kind == p.SESSION and _newer(h.get("ssid"), self.ssid):
            self._claims.claim(handle.name, h["ssid"], self.ssid, env.kind)
            return
        if env.kind == p.HELLO and _newer(h.get("ssid"), self.ssid):
            self._claims.claim(handle.name, h["ssid"], self.ssid, env.kind)
            handle.conn.close()  # that site follows another server: this one is not its own
            return
        if env.kind in (p.HELLO, p.HEARTBEAT):
            handle.update_resources(h.get("resources"))
            handle.jobs = text_list(h, "jobs", required=False)
            self._end_stale_jobs(handle)
            if env.kind == p.HELLO:
                self.wake()  # its resources are known now: maybe a queued job fits
        elif env.kind == p.RESULT:
            try:
                self._intake.result(handle, env)
            finally:
                if isinstance(h.get("grant"), str):
                    self._end_grant(handle, h["grant"])
        elif env.kind == p.LOG:
            self._intake.log_entry(handle, env)
        elif env.kind == p.MAY_UPLOAD:
            self._intake.may_upload(handle, env)  # one waiting grant per (site, job) at most
        elif env.kind == p.JOB_STATE:
            state = self._intake.job_state(handle, env)
            job = self.running.get(state.job_id) if state is not None else None
            if job is not None and state is not None and state.state == "failed":
                detail = f"the site's job process failed:\n{state.detail}"
                failed = Envelope("site_failed", {"site": handle.name, "detail": detail})
                self._to_job(job, failed)
        elif env.kind == p.REPLY:
            entry = self._requests.get(str(h.get("id")))
            if entry is not None:
                entry[1].append(env)
                entry[0].set()

    def _grant(self, handle: SiteHandle, job: RunningJob, grant_id: str) -> None:
        """Tell a site to send its big result once the job's results slot is free; the slot
        is held until that result has been passed on (or the site is gone)."""
        while not job.results_gate.acquire(timeout=1.0):
            if handle.conn.closed or job.done:
                return
        handle.grants[grant_id] = job.results_gate
        self._granted.add(grant_id)
        ok = Envelope(p.UPLOAD_OK, {"id": grant_id})
        if handle.conn.closed or not self.send_to_site(handle.name, ok):
            self._end_grant(handle, grant_id)

    def _end_grant(self, handle: SiteHandle, grant_id: str) -> None:
        slot = handle.grants.pop(grant_id, None)
        if slot is not None:
            self._granted.discard(grant_id)
            slot.release()

    def _end_stale_jobs(self, handle: SiteHandle) -> None:
        """Abort jobs a site still runs that the server no longer runs (missed end_job)."""
        with self._lock:
            stale = [j for j in handle.jobs if j not in self.running and j not in self._to_resume]
        for job_id in stale:
            log.info("site %s still runs job %s, which has ended: aborting it", handle.name, job_id)
            self.send_to_site(handle.name, Envelope(p.ABORT_JOB, {"job_id": job_id}))

    def ask(
        self, site: str, cmd: str, args: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
    ) -> Any:
        """Send a request to a site and wait for its answer; FedraError when it fails."""
        req_id = uuid.uuid4().hex
        event = threading.Event()
        box: list[Envelope] = []
        self._requests[req_id] = (event, box)
        try:
            if not self.send_to_site(
                site, Envelope(p.REQUEST, {"id": req_id, "cmd": cmd, "args": args})
            ):
                raise FedraError(f"site {site!r} is not connected")
            if not event.wait(timeout):
                raise FedraError(f"site {site} did not answer {cmd} within {timeout:.0f} s")
        finally:
            self._requests.pop(req_id, None)
        reply = box[0].headers
        if not reply.get("ok"):
            raise FedraError(f"{reply.get('error')}")
        return reply.get("data")

    def _sites_changed(self) -> None:
        with self._lock:
            connected = set(self.sites)
            jobs = list(self.running.values())
            self._wake.notify_all()
        for job in jobs:
            present = [s for s in job.sites if s in connected]
            self._to_job(job, Envelope(p.SITES, {"sites": present}))

    def send_to_site(
        self, name: str, env: Envelope, shared: SharedBody | None = None, drain: bool = False
    ) -> bool:
        """Send to a connected site; False when it is not connected or the send failed.
        ``shared``: the broadcast's frames of ``env``'s model; this is one of its readers.
        ``drain``: return once the frames have left this process's queue (up to a minute)."""
        handle = self.sites.get(name)
        if handle is None:
            if shared is not None:
                shared.leave()
            return False
        try:
            if shared is None:
                handle.conn.send(env)
            else:
                handle.conn.send_shared(env, shared)
        except (ChannelClosed, FedraError, OSError):
            return False
        if drain:
            handle.conn.drain(60.0)
        return True

    # -- admin --------------------------------------------------------------------------
    def _serve_admin(self, conn: Connection) -> None:
        """Answer one admin connection until it ends (in a thread of the AdminPort)."""
        from fedra.runtime.admin_service import serve_admin

        serve_admin(self, conn)

    def _admin_connected(self, conn: Connection) -> None:
        admit_admin(self.kit.roster, conn.peer)  # listed by the project, not revoked
        self._admin_port.connected(conn)  # then the limits per admin

    # -- scheduling ---------------------------------------------------------------------
    def wake(self) -> None:
        """Re-run the scheduler now (a job was submitted, a site came or went)."""
        with self._lock:
            self._wake.notify_all()

    def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._schedule_once()
                self._expire_silent_sites()
            except Exception:
                log.exception("scheduler step failed")
            with self._lock:
                self._wake.wait(timeout=1.0)

    def _expire_silent_sites(self) -> None:
        limit = time.monotonic() - self.kit.heartbeat_timeout
        with self._lock:
            silent = [h for h in self.sites.values() if max(h.last_seen, h.conn.last_heard) < limit]
        for handle in silent:
            log.warning(
                "site %s sent nothing for %.0f s: dropping it",
                handle.name,
                self.kit.heartbeat_timeout,
            )
            handle.conn.close()

    def _schedule_once(self) -> None:
        if not self.hot:
            return
        for job_id in sorted(self._to_resume):
            self._resume(job_id)
        records = {r.job_id: r for r in self.store.list(statuses={JobStatus.SUBMITTED})}
        for gone in set(self.waiting) - set(records):
            self.waiting.pop(gone, None)
        if not records:
            return
        queue = [
            QueuedJob(r.job_id, r.meta, r.meta.priority, r.submitted_at) for r in records.values()
        ]
        with self._lock:
            free = {n: h.free for n, h in self.sites.items() if h.free is not None}
            running = len(self.running) + len(self._to_resume)
        decisions = schedule(
            queue, free, running, self.kit.max_jobs, time.time(), self.kit.job_aging_s
        )
        for decision in decisions:
            if isinstance(decision, Wait):
                self.waiting[decision.job_id] = f"waiting: {decision.reason}"
            else:
                self._dispatch(records[decision.job_id], list(decision.sites))

    def _dispatch(self, record: JobRecord, sites: list[str]) -> None:
        """Reserve the job's resources on its sites, then move it to DISPATCHED and start it.

        An optional site that refuses the reservation is left out while the job still has
        its mandatory sites and min_clients; otherwise every reservation is released and the
        job waits with the site's reason. The transition expects SUBMITTED, so a job aborted
        meanwhile is never started.
        """
        job_id, meta = record.job_id, record.meta
        reserved: list[str] = []
        refusals: list[str] = []
        for site in sites:
            spec = dict(meta.resource_spec.get(site, {}))
            args = {"job_id": job_id, "spec": spec, "ttl": RESERVATION_TTL_S}
            try:
                report = self.ask(site, "reserve", args)
            except FedraError as exc:
                refusals.append(str(exc))
                if site in meta.mandatory_clients:
                    break
                continue
            reserved.append(site)
            handle = self.sites.get(site)
            if handle is not None:
                handle.update_resources(report)
        enough = len(reserved) >= meta.min_clients
        if not enough or any(s not in reserved for s in meta.mandatory_clients):
            self._release(job_id, reserved)
            self.waiting[job_id] = f"waiting: {'; '.join(refusals) or 'sites refused'}"
            return
        try:
            self.store.transition(
                job_id,
                JobStatus.DISPATCHED,
                f"dispatched to {', '.join(reserved)}",
                expected=JobStatus.SUBMITTED,
            )
        except InvalidTransition:
            self._release(job_id, reserved)  # aborted meanwhile: never started
            return
        self.waiting.pop(job_id, None)
        self._launch(job_id, reserved, resume=False)

    def _release(self, job_id: str, sites: Sequence[str]) -> None:
        """Give back reservations made for a job that will not start (best effort: they expire)."""
        for site in sites:
            try:
                report = self.ask(site, "free", {"job_id": job_id})
            except FedraError as exc:
                log.info("could not release job %s on %s: %s", job_id, site, exc)
                continue
            handle = self.sites.get(site)
            if handle is not None:
                handle.update_resources(report)

    def _resume(self, job_id: str) -> None:
        """Restart a job that was running when the server stopped, once its sites are back."""
        record = self.store.get(job_id)
        if record.status in FINAL:
            self._to_resume.discard(job_id)
            return
        with self._lock:
            if job_id in self.running:
                self._to_resume.discard(job_id)
                return
            connected = sorted(self.sites)
        meta = record.meta
        sites = [s for s in connected if meta.app_for_site(s) is not None]
        missing = [s for s in meta.mandatory_clients if s not in sites]
        if missing:
            self.waiting[job_id] = f"waiting to resume: mandatory sites {missing} not connected"
            return
        if len(sites) < meta.min_clients:
            self.waiting[job_id] = (
                f"waiting to resume: {len(sites)} of min_clients={meta.min_clients} connected"
            )
            return
        self.waiting.pop(job_id, None)
        self._to_resume.discard(job_id)
        self._launch(job_id, sites, resume=True)

    def _launch(self, job_id: str, sites: list[str], resume: bool) -> None:
        try:
            proc, channel, log_path = start_server_job(
                self.kit, self.ca_pem, self.store, self._spool, job_id, sites, resume
            )
        except Exception as exc:
            reason = f"could not start the job: {exc}"
            log.error("job %s: %s", job_id, reason)
            self._finish(
                job_id,
                JobStatus.FAILED_TO_RUN if not resume else JobStatus.FINISHED_EXECUTION_EXCEPTION,
                reason,
            )
            return
        job = RunningJob(job_id, proc, channel, sites, log_path)
        with self._lock:
            self.running[job_id] = job
        threading.Thread(
            target=self._serve_job, args=(job,), name=f"job-{job_id[:8]}", daemon=True
        ).start()
        # RUNNING is recorded before any site hears of the job: an abort that came first wins
        # (the transition fails and the job never starts), one that comes later sees it running.
        try:
            if self.store.get(job_id).status != JobStatus.RUNNING:
                self.store.transition(
                    job_id,
                    JobStatus.RUNNING,
                    "started on " + ", ".join(sites),
                    expected=JobStatus.DISPATCHED,
                )
        except InvalidTransition:
            log.info("job %s was aborted while starting: not started", job_id)
            job.aborting = True
            threading.Thread(target=end_group, args=(job.proc,), daemon=True).start()
            return
        self._send_start(job, sites)
        self._to_job(job, Envelope(p.GO, {}))  # after start_job: sites see it before any task
        self.store.update_run_info(job_id, {"sites": sites})
        log.info("job %s %s on %s", job_id, "resumed" if resume else "started", ", ".join(sites))

    def _send_start(self, job: RunningJob, targets: Sequence[str]) -> None:
        data = self.store.job_zip(job.job_id)
        submission = self.store.get(job.job_id).run_info.get("submission") or {}
        headers = {
            "job_id": job.job_id,
            "sites": job.sites,
            # The submitter's signature and certificate: each site checks them itself.
            "signature": submission.get("signature"),
            "certificate": submission.get("certificate"),
        }
        for site in targets:
            env = Envelope(p.START_JOB, headers, p.zip_model(data))
            if not self.send_to_site(site, env):
                log.warning("could not start job %s on %s", job.job_id, site)

    # -- a running job ------------------------------------------------------------------
    def _to_job(self, job: RunningJob, env: Envelope) -> None:
        # If the job process is gone, _serve_job records why.
        with contextlib.suppress(ChannelClosed, FedraError, OSError):
            job.channel.send(env)

    def _serve_job(self, job: RunningJob) -> None:
        outcome: dict[str, Any] | None = None
        try:
            while True:
                env = job.channel.recv()
                h = env.headers
                if env.kind == p.TASK and "targets" in h:
                    self._fan_out(job, env)
                elif env.kind == p.TASK:
                    site = str(h["site"])
                    self._intake.task_sent(job.job_id, env)
                    if not self.send_to_site(site, env):
                        self._intake.ledger.forget_task(job.job_id, str(h["task_id"]))
                        self._to_job(job, Envelope("lost", {"task_id": h["task_id"]}))
                elif env.kind == p.ROUND:
                    job.rounds.append(dict(h))
                    self.store.update_run_info(job.job_id, {"rounds": job.rounds})
                elif env.kind == p.DONE:
                    outcome = dict(h)
                    break
                relayed = env.model is not None
                del env  # hold no model while waiting for the next message
                if relayed:
                    trim_heap()  # the frames of every site's copy, freed in many threads
        except (ChannelClosed, FedraError, OSError) as exc:
            log.info("job %s: channel closed (%s)", job.job_id, exc)
        job.done = True
        if outcome is None:
            self._intake.ledger.forget_job(job.job_id)  # (else when its end is recorded)
        if self._stopping.is_set() or job.detached:
            with self._lock:
                if self.running.get(job.job_id) is job:
                    del self.running[job.job_id]
            return  # the job stays RUNNING and resumes at the next start (or on the new hot)
        try:
            self._job_ended(job, outcome)
            if self.store.get(job.job_id).status in FINAL:  # nothing will resume it
                RunStore(self.store.workspace(job.job_id)).drop_snapshots()
        except StaleSession as exc:  # a newer hot server owns the store: it resumes the job
            log.error("job %s: end not recorded: %s", job.job_id, exc)
        self.wake()

    def _job_ended(self, job: RunningJob, outcome: dict[str, Any] | None) -> None:
        """Tell the sites, record how the job ended (its DONE message, or a crash); a job
        that too few sites ran does not complete (see Intake.final_status)."""
        if outcome is not None:
            status = JobStatus(str(outcome["status"]))
            reason = str(outcome.get("error") or "all workflows finished")
            min_clients = self.store.get(job.job_id).meta.min_clients
            status, reason, refused = self._intake.final_status(job, min_clients, status, reason)
        code = end_group(job.proc, grace=5.0)
        reclaim(job.log_path.parent)  # the job's workspace: the parent's only again
        with self._lock:
            self.running.pop(job.job_id, None)
        kind = p.ABORT_JOB if job.aborting else p.END_JOB
        for site in job.sites:
            self.send_to_site(site, Envelope(kind, {"job_id": job.job_id}))
        if outcome is not None:
            if refused and not outcome.get("failed_site"):
                site = next(iter(refused))
                outcome = {**outcome, "failed_site": site, "traceback": refused[site]}
            if outcome.get("failed_site"):
                self.store.set_failure(
                    job.job_id,
                    {
                        "site": outcome.get("failed_site"),
                        "task": outcome.get("failed_task"),
                        "traceback": outcome.get("traceback"),
                        "reason": reason,
                    },
                )
            self._finish(job.job_id, status, reason)
        elif not job.aborting:
            reason = f"the server job process exited with code {code}"
            self.store.set_failure(
                job.job_id,
                {"site": "server", "task": None, "traceback": tail(job.log_path), "reason": reason},
            )
            self._finish(job.job_id, JobStatus.FINISHED_EXECUTION_EXCEPTION, reason)

    def _fan_out(self, job: RunningJob, env: Envelope) -> None:
        """Send one broadcast to its sites in parallel; the model is decoded here once and,
        when big, framed once for all of them (:class:`SharedBody`)."""
        h = env.headers
        common = {k: v for k, v in h.items() if k != "targets"}
        shared = None
        params = env.model.params if env.model is not None else None
        if params and sum(a.nbytes for a in params.values()) > GATED_MESSAGE_BYTES:
            with contextlib.suppress(FedraError):  # each send then says why
                shared = SharedBody(Envelope(p.TASK, {}, env.model), len(h["targets"]))

        # A big model goes to FANOUT sites at a time: what the sends hold in this process
        # (frames queued for each stream) then does not grow with the number of sites.
        turns = threading.Semaphore(FANOUT if shared is not None else len(h["targets"]) or 1)

        self._intake.task_sent(job.job_id, env)

        def send(target: dict[str, Any]) -> None:
            headers = {**common, "site": target["site"], "task_id": target["task_id"]}
            task = Envelope(p.TASK, headers, env.model)
            with turns:  # held until the model has left (a slow site keeps its turn)
                sent = self.send_to_site(str(target["site"]), task, shared, drain=True)
            if not sent:
                self._intake.ledger.forget_task(job.job_id, str(target["task_id"]))
                self._to_job(job, Envelope("lost", {"task_id": target["task_id"]}))

        threads = [threading.Thread(target=send, args=(t,), daemon=True) for t in h["targets"]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _finish(self, job_id: str, status: JobStatus, reason: str) -> None:
        # Already final (aborted first): the first word stands.
        with contextlib.suppress(InvalidTransition):
            self.store.transition(job_id, status, reason)
        log.info("job %s: %s (%s)", job_id, self.store.get(job_id).status.value, reason)

    def abort(self, job_id: str, reason: str = "aborted by an admin") -> JobStatus:
        """Abort a job: recorded first (nothing can start it after this), then stopped."""
        record = self.store.get(job_id)
        if record.status in FINAL:
            return record.status
        self.store.transition(job_id, JobStatus.FINISHED_ABORTED, reason)
        self._to_resume.discard(job_id)
        with self._lock:
            job = self.running.get(job_id)
        if job is not None:
            job.aborting = True
            self._to_job(job, Envelope(p.ABORT, {"reason": reason}))
            threading.Thread(target=end_group, args=(job.proc,), daemon=True).start()
            for site in job.sites:
                self.send_to_site(site, Envelope(p.ABORT_JOB, {"job_id": job_id, "reason": reason}))
        log.info("job %s aborted: %s", job_id, reason)
        return JobStatus.FINISHED_ABORTED


def _newer(theirs: object, ours: int | None) -> bool:
    """Whether a peer's session id is newer than this server's."""
    return (
        isinstance(theirs, int)
        and not isinstance(theirs, bool)
        and ours is not None
        and theirs > ours
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m fedra.runtime.server_parent --kit DIR``."""
    root = parent_kit(argv, "Fedra server (parent process)")
    if isinstance(root, int):
        return root
    server = ServerParent(ServerKit.load(root))
    parent_ready(root, server.shutdown)
    server.start()
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
