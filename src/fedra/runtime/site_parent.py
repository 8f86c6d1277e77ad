"""The site parent process (CP): connects out to the server, runs each job in its own process.

It only ever opens outbound connections. After the server goes away it reconnects forever,
with exponential backoff and jitter, logging each attempt at a sane rate. With an overseer
(high availability) it asks the overseer which server is hot, connects to that one, and
reconnects when the overseer's service session id (SSID) changes. Each job runs in a
site job process (CJ) in its own process group: an abort ends the whole group, training
scripts included (SIGTERM, then SIGKILL after a grace period).

What the site does about its jobs is decided by its state machine
(:class:`fedra.runtime.site_state.SiteState`); this module is its shell: it reads the
server and the job processes, feeds the machine events and carries out its actions.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fedra.core import FedraError, InvalidTransition, trim_heap
from fedra.pki import TlsFiles
from fedra.protocol import (
    FROM_SITE_JOB,
    TO_SITE,
    BadMessage,
    Heartbeat,
    Hello,
    Log,
    Request,
    Result,
    Session,
    Stop,
    Welcome,
    decode,
    encode,
)
from fedra.runtime.config import SiteKit
from fedra.runtime.isolation import reclaim
from fedra.runtime.procs import end_group, parent_kit, parent_ready, tail
from fedra.runtime.site_events import (
    Action,
    CheckJob,
    Connected,
    Disconnect,
    Disconnected,
    EndProcess,
    Event,
    FreeResources,
    FromServer,
    JobExited,
    JobLog,
    JobReady,
    JobResult,
    JobSendFailed,
    JobStartFailed,
    SendToJob,
    SendToServer,
    ServeRequest,
    Shutdown,
    StartProcess,
    Tick,
)
from fedra.runtime.site_launch import SiteJob, check_job_here, start_process
from fedra.runtime.site_requests import SiteDesk, malformed_request
from fedra.runtime.site_resources import SiteResourceBook, load_site_resources
from fedra.runtime.site_state import SiteState
from fedra.transport import (
    ChannelClosed,
    Connection,
    Spool,
    connect,
)
from fedra.wire import Envelope

log = logging.getLogger("fedra.site")
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0


class SiteParent:
    """The long-lived site process: the shell around its :class:`SiteState`."""

    def __init__(self, kit: SiteKit) -> None:
        self.tls = TlsFiles.in_dir(kit.startup, "client").load()
        self._setup(kit, SiteResourceBook(kit.name, load_site_resources(kit.root)))
        self._spool = Spool(kit.root / "spool")
        self.overseer: Any = None
        if kit.overseer is not None:
            from fedra.runtime.ha import overseer_client

            self.overseer = overseer_client(kit.root, "client")

    def _setup(self, kit: SiteKit, resources: SiteResourceBook) -> None:
        """The state that needs no certificate, spool or overseer (unit tests start here)."""
        self.kit = kit
        self.resources = resources
        self.state = SiteState(kit.name)
        self.desk = SiteDesk(kit.name, kit.root, resources, self.running, self.shutdown)
        self.procs: dict[str, SiteJob] = {}
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._stopping = threading.Event()
        self.exit_code = 0
        self.overseer = None
        #: The service session of the server connected to (with an overseer), else None.
        self.ssid: int | None = None
        #: Seconds between two heartbeats: the kit's, or longer when the server asks for
        #: fewer (its Welcome's ``heartbeat_interval``: a server with many sites).
        self.beat_every = kit.heartbeat_interval
        self._clock = time.monotonic

    def running(self) -> list[str]:
        """The jobs whose process is up."""
        with self._lock:
            return self.state.live_jobs()

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
                # A dead server fails here at once, not after gRPC's backoff: a shutdown
                # meanwhile then ends this loop at once too.
                _probe(target)
                conn = self._connect(target, server_name)
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
        self._dispatch(Shutdown())
        return self.exit_code

    def _connect(self, target: str, server_name: str) -> Connection:
        """A connection to the server at ``target``, its certificate checked against the
        roster (FedraError otherwise)."""
        ca, cert, key = self.tls
        conn = connect(
            target,
            ca_pem=ca,
            cert_pem=cert,
            key_pem=key,
            server_name=server_name,
            timeout=10.0,
            spool=self._spool,  # big tasks go to disk, then to the job as files
            receive_window=self.kit.receive_window,
        )
        peer = conn.peer
        if why := self.kit.roster.participant_refusal(peer.name, "server", peer.fingerprint):
            conn.close()
            raise FedraError(f"refused: {why}")
        return conn

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
                    conn.send(encode(Session(ssid=answer.ssid)))
                conn.close()
                return

    def _serve(self, conn: Connection) -> None:
        self._conn = conn
        self.beat_every = self.kit.heartbeat_interval  # until this server's Welcome says
        stop_beat = threading.Event()
        threading.Thread(target=self._heartbeat, args=(conn, stop_beat), daemon=True).start()
        if self.overseer is not None:
            threading.Thread(
                target=self._follow_overseer, args=(conn, stop_beat), daemon=True
            ).start()
        self._dispatch(Connected(self.ssid))
        try:
            hello = Hello(site=self.kit.name, resources=self.resources.report(), ssid=self.ssid)
            conn.send(encode(hello))
            while not self._stopping.is_set():
                env = conn.recv()
                relayed = env.model is not None
                self._from_server(env)
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
            self._dispatch(Disconnected())

    def _from_server(self, env: Envelope) -> None:
        """Decode a message of the server and hand it to the machine; a malformed one is
        refused with one log line (a request also with a refusal reply)."""
        try:
            message = decode(env, TO_SITE)
        except BadMessage as exc:
            if env.kind == Request.KIND:
                reply = malformed_request(env.headers, str(exc))
                if reply is not None:
                    self._send(encode(reply))
            else:
                log.warning("refused a malformed %r message from the server: %s", env.kind, exc)
            return
        if isinstance(message, Welcome) and message.heartbeat_interval is not None:
            self.beat_every = max(self.kit.heartbeat_interval, message.heartbeat_interval)
        self._dispatch(FromServer(message, env.model))

    def _heartbeat(self, conn: Connection, stop: threading.Event) -> None:
        """Tick the machine every ``heartbeat_interval`` of the kit; send a heartbeat when
        ``beat_every`` (half a tick of leeway) has passed since the last one."""
        tick = self.kit.heartbeat_interval
        last = self._clock()
        while not stop.wait(tick):
            now = self._clock()
            self._dispatch(Tick(now))  # big results waited long enough go now
            if now - last + tick / 2 < self.beat_every:
                continue  # the server asked for fewer heartbeats
            last = now
            try:
                beat = Heartbeat(jobs=tuple(self.running()), resources=self.resources.report())
                conn.send(encode(beat))
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

    # -- the machine ----------------------------------------------------------------------
    def _dispatch(self, event: Event) -> None:
        """Feed ``event`` to the machine, then carry out its actions (outside the lock: an
        action may take long, and may feed the machine further events)."""
        with self._lock:
            try:
                actions = self.state.handle(event)
            except InvalidTransition as exc:  # a bug here must not end a reader
                log.error("site state machine: %s on %s", exc, type(event).__name__)
                return
        for action in actions:
            self._do(action)

    def _do(self, action: Action) -> None:
        if isinstance(action, SendToServer):
            env = encode(action.message, action.model)
            if isinstance(action.message, Result) and action.message.grant is not None:
                # A granted big result: sent aside, so that the server's reader (which got
                # the go-ahead) reads on while it uploads.
                threading.Thread(target=self._send, args=(env,), daemon=True).start()
            else:
                self._send(env)
        elif isinstance(action, SendToJob):
            self._to_job(action)
        elif isinstance(action, CheckJob):
            self._dispatch(check_job_here(self.kit, self.tls[0], action))
        elif isinstance(action, StartProcess):
            self._launch(action)
        elif isinstance(action, EndProcess):
            self._end_process(action)
        elif isinstance(action, FreeResources):
            self.resources.free(action.job_id)
            if action.reclaim:
                reclaim(self.kit.root / "jobs" / action.job_id)
        elif isinstance(action, ServeRequest):
            reply = self.desk.answer(action.request)
            if reply is not None:
                self._send(encode(reply))
        elif isinstance(action, Disconnect):
            log.warning("dropping the server connection: %s", action.reason)
            conn = self._conn
            if conn is not None:
                conn.close()

    # -- job processes --------------------------------------------------------------------
    def _launch(self, action: StartProcess) -> None:
        """Start the job's process; once it is ready, read it in a thread of its own."""
        try:
            job = start_process(self.kit, self.resources, self._spool, action)
        except Exception as exc:
            self._dispatch(JobStartFailed(action.job_id, action.run, str(exc)))
            return
        with self._lock:
            self.procs[job.job_id] = job
        log.info("job %s: process started (pid %d)", job.job_id, job.proc.pid)
        self._dispatch(JobReady(job.job_id, action.run))
        threading.Thread(target=self._serve_job, args=(job,), daemon=True).start()

    def _serve_job(self, job: SiteJob) -> None:
        """Read a job's process until it ends; a malformed message is refused, one log line."""
        try:
            while True:
                env = job.channel.recv()
                relayed = env.model is not None
                try:
                    message = decode(env, FROM_SITE_JOB)
                except BadMessage as exc:
                    log.warning("refused a malformed message of job %s: %s", job.job_id, exc)
                    continue
                if isinstance(message, Result):
                    nbytes = _model_bytes(env)
                    grant, now = uuid.uuid4().hex, time.monotonic()
                    event: Event = JobResult(
                        job.job_id, job.run, message, env.model, nbytes, grant, now
                    )
                    self._dispatch(event)
                elif isinstance(message, Log):
                    self._dispatch(JobLog(job.job_id, job.run, message))
                del env  # hold no model while waiting for the next message
                if relayed:
                    trim_heap()
        except (ChannelClosed, FedraError, OSError):
            pass
        code = end_group(job.proc, grace=2.0)
        with self._lock:
            if self.procs.get(job.job_id) is job:
                del self.procs[job.job_id]
        detail = f"the site job process exited with code {code}\n{tail(job.log_path)}"
        self._dispatch(JobExited(job.job_id, job.run, detail))

    def _to_job(self, action: SendToJob) -> None:
        job = self.procs.get(action.job_id)
        try:
            if job is None or job.run != action.run:
                raise FedraError("no process")
            job.channel.send(encode(action.task, action.model))
        except (ChannelClosed, FedraError, OSError):
            self._dispatch(JobSendFailed(action.job_id, action.run, action.task))

    def _end_process(self, action: EndProcess) -> None:
        job = self.procs.get(action.job_id)
        if job is None or job.run != action.run:
            return  # not started yet: it is ended when it is ready
        if not action.abort:
            try:
                job.channel.send(encode(Stop()))
                job.proc.wait(10.0)
            except (ChannelClosed, FedraError, OSError, subprocess.TimeoutExpired):
                pass
        end_group(job.proc)  # whatever is left of the job's process group
        # Here, not in _serve_job's thread: a restarted job's new process gets the folder next.
        reclaim(job.log_path.parent)
        job.channel.close()

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
