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
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from fedra.core import FedraError, FLModel, InvalidTransition, JobStatus
from fedra.jobstore import JobStore, StaleSession, open_store
from fedra.pki import TlsFiles
from fedra.protocol import (
    FROM_SITE,
    UPLOAD_ASK_BYTES,
    BadMessage,
    Message,
    Result,
    Task,
    decode_headers,
    encode,
)
from fedra.runtime.admin_port import AdminPort
from fedra.runtime.config import ServerKit
from fedra.runtime.fdlimit import ensure_open_files, open_files_needed
from fedra.runtime.intake import Intake
from fedra.runtime.peers import SessionClaims, admit_admin, admit_site
from fedra.runtime.procs import end_group, parent_kit, parent_ready
from fedra.runtime.routing import (
    AbortAsked,
    Action,
    EndProcess,
    Event,
    FreeUploads,
    Phase,
    Record,
    Refusals,
    Refused,
    Router,
    StartOn,
    StepDown,
    ToJob,
    ToSite,
)
from fedra.runtime.server_jobs import end_detached, send_start, to_job
from fedra.runtime.server_records import RunningJob, SiteHandle
from fedra.runtime.server_schedule import schedule_once
from fedra.runtime.server_sites import REQUEST_TIMEOUT_S, Requests, ask, serve_site
from fedra.runtime.uploads import UploadSlots
from fedra.transport import ChannelClosed, Connection, SharedBody, Spool, TransportServer
from fedra.wire import Envelope, peek_frame

log = logging.getLogger("fedra.server")
FINAL = {s for s in JobStatus if s.is_final}
#: Site messages above this many bytes wait their turn (see ServerParent._receive_gate).
GATED_MESSAGE_BYTES = UPLOAD_ASK_BYTES


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
        self.claims = SessionClaims(lambda why: self.ha.ask_now(why) if self.ha else None)
        #: Guards ``sites``, ``running``, ``waiting``, ``to_resume`` and ``hot``.
        self.lock = threading.RLock()
        self._wake = threading.Condition(self.lock)
        self.sites: dict[str, SiteHandle] = {}
        self.running: dict[str, RunningJob] = {}
        self.waiting: dict[str, str] = {}  # job id -> why it waits
        self.to_resume: set[str] = set()
        #: What follows each event for the running jobs (pure); ``_routing`` guards it and
        #: is notified after each event (see await_reports).
        self._router = Router()
        self._routing = threading.Condition(threading.Lock())
        self._detaching = False
        #: The results slot of each job, the stray slot, the upload grants (own lock).
        self.uploads = UploadSlots()
        #: Requests to sites waiting for their reply (own lock).
        self.requests = Requests()
        #: Checks what sites send for their jobs (results, upload requests).
        self.intake = Intake(self)
        self._stopping = threading.Event()
        self.exit_code = 0
        ca, cert, key = TlsFiles.in_dir(kit.startup, "server").load()
        self.ca_pem = ca
        self.spool = Spool(kit.root / "spool")
        self._fed = TransportServer(
            kit.host,
            kit.fed_port if fed_port is None else fed_port,
            ca_pem=ca,
            cert_pem=cert,
            key_pem=key,
            on_connect=self._site_connected,
            # Big results go to disk here and are handed to the job process as files.
            spool=self.spool,
            receive_window=kit.receive_window,
            # Each site connection holds server threads while it is open: as many as the
            # project has sites, and some room (fedra.runtime.config.ServerKit).
            max_workers=kit.max_connections,
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
        ensure_open_files(open_files_needed(self.kit.max_connections))
        self.fed_port = self._fed.start()
        self.admin_port = self._admin.start()
        log.info(
            "server %s listening: FL port %d (receive window %d bytes), admin port %d",
            self.kit.name,
            self.fed_port,
            self.kit.receive_window or 0,
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
            self.to_resume.add(record.job_id)
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
        with self.lock:
            self.store = self._base_store.fenced(ssid)
            self.ssid = ssid
            self._pick_up_interrupted()
            self.hot = True
            self._wake.notify_all()
        log.info("this server is hot now (service session %d)", ssid)
        return True

    def step_down(self, reason: str) -> None:
        """Stop acting: end the job processes (jobs stay RUNNING in the store), drop sites."""
        with self.lock:
            if not self.hot:
                return
            self.hot = False
            jobs = list(self.running.values())
            sites = list(self.sites.values())
            self.to_resume.clear()
            self.waiting.clear()
        log.warning("stepping down (%s): ending %d job processes", reason, len(jobs))
        self._detach(jobs)
        for handle in sites:
            handle.conn.close()

    def _detach(self, jobs: list[RunningJob]) -> None:
        """End the job processes; the jobs stay RUNNING in the store for whoever resumes."""
        self._detaching = True
        try:
            self.feed(StepDown())
        finally:
            self._detaching = False
        end_detached(jobs)

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
        with self.lock:
            jobs = list(self.running.values())
            self._wake.notify_all()
        self._detach(jobs)  # their kit copies go; they resume with new ones
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
        admit_site(self.sites, self.lock, handle, self.kit)
        name = peer.name
        conn.set_gate(lambda total, head: self._receive_gate(total, head, name))
        threading.Thread(
            target=serve_site, args=(self, handle), name=f"site-{peer.name}", daemon=True
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
            self.intake.gate(site, found, total, len(head))
        job_id = grant = None
        if found is not None and found.kind == Result.KIND:
            with contextlib.suppress(BadMessage):
                result = decode_headers(found.kind, found.headers, FROM_SITE)
                assert isinstance(result, Result)
                job_id, grant = result.job_id, result.grant
        return self.uploads.gate_slot(job_id, grant)

    def ask(
        self, site: str, cmd: str, args: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
    ) -> Any:
        """Send a request to a site and wait for its answer; FedraError when it fails."""
        return ask(self, site, cmd, args, timeout)

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

    # -- the router: events in, actions out ----------------------------------------------
    def feed(self, event: Event, model: FLModel | None = None) -> list[Action]:
        """Hand an event to the router and do what it says (``model``: a result's, passed
        on with it). Tasks it lets out are returned for the caller to send (with their
        model); every other action is done here."""
        with self._routing:
            actions = self._router.handle(event)
            self._routing.notify_all()
        for action in actions:
            self._do(action, model)
        return actions

    def _do(self, action: Action, model: FLModel | None) -> None:
        match action:
            case ToSite(site=site, message=message) if not isinstance(message, Task):
                self.send_to_site(site, encode(message))
            case StartOn(job_id=job_id, site=site):
                self.start_on(job_id, site)
            case ToJob(job_id=job_id, message=message):
                with self.lock:
                    job = self.running.get(job_id)
                if job is not None:
                    self.to_job(job, message, model if isinstance(message, Result) else None)
            case Refused(site=site, job_id=job_id, task_id=task_id, why=why):
                log.warning(
                    "refused the result of site %s for task %s of job %s: %s",
                    site,
                    task_id[:64],
                    job_id[:64],
                    why,
                )
            case EndProcess(job_id=job_id):
                with self.lock:
                    job = self.running.get(job_id)
                if job is not None and not self._detaching:
                    threading.Thread(target=end_group, args=(job.proc,), daemon=True).start()
            case FreeUploads(job_id=job_id, site=site):
                if site is not None:
                    self.uploads.end_site(site, job_id)
                elif job_id is not None:
                    self.uploads.close_job(job_id)
            case Record(job_id=job_id, status=status, reason=reason, failure=failure):
                if failure is not None:
                    self.store.set_failure(job_id, dataclasses.asdict(failure))
                self.finish(job_id, status, reason)
            case Refusals(job_id=job_id, refused=refused):
                self.store.update_run_info(job_id, {"site_refusals": refused})

    def start_on(self, job_id: str, site: str) -> None:
        """Send a running job's StartJob to a site."""
        send_start(self, job_id, site)

    def to_job(self, job: RunningJob, message: Message, model: FLModel | None = None) -> None:
        """Send to a job's process (gone: its reader records why)."""
        to_job(job, message, model)

    def phase(self, job_id: str) -> Phase:
        """A running job's phase (ENDED: not running here)."""
        with self._routing:
            return self._router.phase(job_id)

    def upload_allowed(self, job_id: str, site: str) -> tuple[bool, bool]:
        """Whether ``site`` is one of the sites of running ``job_id``, and has a task of it
        outstanding (it may then ask to upload a result of it)."""
        with self._routing:
            return self._router.takes_from(job_id, site), self._router.has_task(job_id, site)

    def await_reports(self, job_id: str, timeout: float) -> None:
        """Wait, when a job completes, until each of its connected sites has said whether it
        runs the job (a workflow that sends no task can end before the sites answered)."""
        deadline = time.monotonic() + timeout
        with self._routing:
            book = self._router.jobs.get(job_id)
            if book is None or book.done is None:
                return
            if book.done.status != JobStatus.FINISHED_COMPLETED:
                return
            while not self._router.all_reported(job_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._routing.wait(min(left, 0.5))

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
        with self.lock:
            self._wake.notify_all()

    def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                schedule_once(self)
                self._expire_silent_sites()
            except Exception:
                log.exception("scheduler step failed")
            with self.lock:
                self._wake.wait(timeout=1.0)

    def _expire_silent_sites(self) -> None:
        limit = time.monotonic() - self.kit.heartbeat_timeout
        with self.lock:
            silent = [h for h in self.sites.values() if max(h.last_seen, h.conn.last_heard) < limit]
        for handle in silent:
            log.warning(
                "site %s sent nothing for %.0f s: dropping it",
                handle.name,
                self.kit.heartbeat_timeout,
            )
            handle.conn.close()

    def finish(self, job_id: str, status: JobStatus, reason: str) -> None:
        """Record a job's end (already final, e.g. aborted first: the first word stands)."""
        with contextlib.suppress(InvalidTransition):
            self.store.transition(job_id, status, reason)
        log.info("job %s: %s (%s)", job_id, self.store.get(job_id).status.value, reason)

    def abort_running(self, job_id: str, reason: str) -> None:
        """Stop a running job's process (its end is recorded by whoever aborted it)."""
        self.feed(AbortAsked(job_id, reason))

    def abort(self, job_id: str, reason: str = "aborted by an admin") -> JobStatus:
        """Abort a job: recorded first (nothing can start it after this), then stopped."""
        record = self.store.get(job_id)
        if record.status in FINAL:
            return record.status
        self.store.transition(job_id, JobStatus.FINISHED_ABORTED, reason)
        with self.lock:
            self.to_resume.discard(job_id)
        self.abort_running(job_id, reason)
        log.info("job %s aborted: %s", job_id, reason)
        return JobStatus.FINISHED_ABORTED


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
