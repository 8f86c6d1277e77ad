"""The server parent's running jobs: start a job's process, serve it, end it.

Each running job has a server job process (SJ) and a thread here that reads it: its tasks
go to the sites (a broadcast fanned out, its model framed once), its rounds are recorded,
and its DONE (or its exit) ends the job. What follows each event is decided by the pure
:class:`fedra.runtime.routing.Router`; this module does the I/O.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fedra.core import FedraError, InvalidTransition, JobStatus, JsonObject, JsonValue, trim_heap
from fedra.jobstore import StaleSession
from fedra.protocol import (
    FROM_SERVER_JOB,
    BadMessage,
    Broadcast,
    Done,
    Message,
    Round,
    StartJob,
    Target,
    Task,
    decode,
    encode,
    zip_model,
)
from fedra.runtime.isolation import reclaim
from fedra.runtime.procs import end_group, tail
from fedra.runtime.routing import (
    JobDone,
    JobEnded,
    JobLaunched,
    JobRunning,
    Phase,
    TasksOut,
    ToSite,
)
from fedra.runtime.routing import Undelivered as UndeliveredEvent
from fedra.runtime.server_launch import start_server_job
from fedra.runtime.server_records import RunningJob
from fedra.serverapp import RunStore
from fedra.serverapp.resultspec import Expectation
from fedra.transport import ChannelClosed, SharedBody
from fedra.wire import Envelope

if TYPE_CHECKING:
    from fedra.core import FLModel
    from fedra.runtime.server_parent import ServerParent

log = logging.getLogger("fedra.server")
#: Sites a big model is sent to at the same time (the others wait for a turn).
FANOUT = 4
#: Models above this many bytes are framed once for all the sites of a broadcast.
SHARED_MODEL_BYTES = 1 << 20
#: Longest wait, when a job ends, for its sites to say whether they run it.
REPORT_WAIT_S = 30.0


def launch(server: ServerParent, job_id: str, sites: list[str], resume: bool) -> None:
    """Start (or resume) a job's process, record RUNNING, then tell its sites."""
    try:
        proc, channel, log_path = start_server_job(
            server.kit, server.ca_pem, server.store, server.spool, job_id, sites, resume
        )
    except Exception as exc:
        reason = f"could not start the job: {exc}"
        log.error("job %s: %s", job_id, reason)
        failed = JobStatus.FAILED_TO_RUN if not resume else JobStatus.FINISHED_EXECUTION_EXCEPTION
        server.finish(job_id, failed, reason)
        return
    job = RunningJob(job_id, proc, channel, sites, log_path)
    with server.lock:
        server.running[job_id] = job
    server.uploads.open_job(job_id)
    server.feed(JobLaunched(job_id, tuple(sites)))
    threading.Thread(
        target=serve_job, args=(server, job), name=f"job-{job_id[:8]}", daemon=True
    ).start()
    # RUNNING is recorded before any site hears of the job: an abort that came first wins
    # (the transition fails and the job never starts), one that comes later sees it running.
    try:
        if server.store.get(job_id).status != JobStatus.RUNNING:
            server.store.transition(
                job_id,
                JobStatus.RUNNING,
                "started on " + ", ".join(sites),
                expected=JobStatus.DISPATCHED,
            )
    except InvalidTransition:
        log.info("job %s was aborted while starting: not started", job_id)
        server.abort_running(job_id, "aborted while starting")
        return
    server.feed(JobRunning(job_id))  # start_job to its sites, then GO to the process
    server.store.update_run_info(job_id, {"sites": sites})
    log.info("job %s %s on %s", job_id, "resumed" if resume else "started", ", ".join(sites))


def send_start(server: ServerParent, job_id: str, site: str) -> None:
    """Send a job's StartJob, its zip beside it, to one site."""
    with server.lock:
        job = server.running.get(job_id)
    if job is None:
        return
    submission = server.store.get(job_id).run_info.get("submission") or {}
    start = StartJob(
        job_id,
        tuple(job.sites),
        # The submitter's signature and certificate: each site checks them itself.
        signature=submission.get("signature"),
        certificate=submission.get("certificate"),
    )
    if not server.send_to_site(site, encode(start, zip_model(server.store.job_zip(job_id)))):
        log.warning("could not start job %s on %s", job_id, site)


def to_job(job: RunningJob, message: Message, model: FLModel | None = None) -> None:
    """Send to a job's process; if it is gone, its reader records why."""
    with contextlib.suppress(ChannelClosed, FedraError, OSError):
        job.channel.send(encode(message, model))


def serve_job(server: ServerParent, job: RunningJob) -> None:
    """Read a job's process until it says DONE or goes away, then end the job."""
    done: Done | None = None
    try:
        while done is None:
            env = job.channel.recv()
            try:
                done = _from_job(server, job, env)
            except BadMessage as exc:
                log.warning(
                    "refused a malformed message from job %s's process: %s", job.job_id, exc
                )
            relayed = env.model is not None
            del env  # hold no model while waiting for the next message
            if relayed:
                trim_heap()  # the frames of every site's copy, freed in many threads
    except (ChannelClosed, FedraError, OSError) as exc:
        log.info("job %s: channel closed (%s)", job.job_id, exc)
    if done is not None:
        try:
            status = JobStatus(done.status)
        except ValueError:
            status = JobStatus.FINISHED_EXECUTION_EXCEPTION
        server.feed(JobDone(job.job_id, status, done))
    try:
        _end(server, job)
    except StaleSession as exc:  # a newer hot server owns the store: it resumes the job
        log.error("job %s: end not recorded: %s", job.job_id, exc)
    server.wake()


def _from_job(server: ServerParent, job: RunningJob, env: Envelope) -> Done | None:
    """Act on one message of a job's process; its DONE, when it is one."""
    message = decode(env, FROM_SERVER_JOB)
    match message:
        case Broadcast(task_name=name, targets=targets):
            _deliver(
                server,
                job,
                TasksOut(job.job_id, name, targets, Expectation.of_task(env.model)),
                env.model,
            )
        case Task(task_name=name, task_id=task_id, site=site):
            targets = (Target(site, task_id),)
            _deliver(
                server,
                job,
                TasksOut(job.job_id, name, targets, Expectation.of_task(env.model)),
                env.model,
            )
        case Round():
            rounds = _rounds_with(server.store.get(job.job_id).run_info, message)
            server.store.update_run_info(job.job_id, {"rounds": rounds})
        case Done():
            return message
        case _:
            log.warning("job %s's process sent an unexpected %r", job.job_id, env.kind)
    return None


def _rounds_with(run_info: JsonObject, message: Round) -> list[JsonValue]:
    """The job's recorded rounds with ``message`` added. Those recorded by an earlier start
    of the job stay (a job resumed after a failover or a restart goes on where it left off);
    a round run again replaces its earlier record."""
    recorded = run_info.get("rounds")
    key = (message.workflow, message.round)
    kept: list[JsonValue] = [
        r
        for r in (recorded if isinstance(recorded, list) else [])
        if isinstance(r, dict) and (r.get("workflow"), r.get("round")) != key
    ]
    return [*kept, _round_info(message)]


def _round_info(message: Round) -> JsonObject:
    return {
        "workflow": message.workflow,
        "round": message.round,
        "metrics": dict(message.metrics),
        "seconds": message.seconds,
        "sites": list(message.sites),
    }


def _deliver(server: ServerParent, job: RunningJob, event: TasksOut, model: FLModel | None) -> None:
    """Send the tasks the router lets out, in parallel; the model is framed once for all
    sites when big (:class:`SharedBody`), and goes to FANOUT sites at a time: what the sends
    hold in this process then does not grow with the number of sites."""
    tasks = [a for a in server.feed(event) if isinstance(a, ToSite) and isinstance(a.message, Task)]
    if not tasks:
        return
    shared = None
    params = model.params if model is not None else None
    if len(tasks) > 1 and params and sum(a.nbytes for a in params.values()) > SHARED_MODEL_BYTES:
        with contextlib.suppress(FedraError):  # each send then says why
            shared = SharedBody(encode(tasks[0].message, model), len(tasks))
    turns = threading.Semaphore(FANOUT if shared is not None else len(tasks))

    def send(action: ToSite) -> None:
        assert isinstance(action.message, Task)
        with turns:  # held until the model has left (a slow site keeps its turn)
            sent = server.send_to_site(
                action.site, encode(action.message, model), shared, drain=shared is not None
            )
        if not sent:
            server.feed(UndeliveredEvent(job.job_id, action.message.task_id))

    if len(tasks) == 1:
        send(tasks[0])
        return
    threads = [threading.Thread(target=send, args=(t,), daemon=True) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _end(server: ServerParent, job: RunningJob) -> None:
    """Wait (a while) for the sites' word on the job, end its process, record its end."""
    if server.phase(job.job_id) == Phase.DETACHED:
        with server.lock:
            if server.running.get(job.job_id) is job:
                del server.running[job.job_id]
        server.feed(JobEnded(job.job_id, None, 1))
        return  # the job stays RUNNING and resumes at the next start (or on the new hot)
    server.await_reports(job.job_id, REPORT_WAIT_S)
    code = end_group(job.proc, grace=5.0)
    reclaim(job.log_path.parent)  # the job's workspace: the parent's only again
    with server.lock:
        if server.running.get(job.job_id) is job:
            del server.running[job.job_id]
    try:
        min_clients = server.store.get(job.job_id).meta.min_clients
    except FedraError:
        min_clients = 1
    server.feed(JobEnded(job.job_id, code, min_clients, tail(job.log_path)))
    with contextlib.suppress(FedraError):
        if server.store.get(job.job_id).status.is_final:  # nothing will resume it
            RunStore(server.store.workspace(job.job_id)).drop_snapshots()


def end_detached(jobs: Sequence[RunningJob]) -> None:
    """End the processes of jobs left RUNNING in the store (step down, shutdown)."""
    for job in jobs:
        end_group(job.proc, grace=2.0)
        reclaim(job.log_path.parent)  # it resumes with a new kit copy, here or elsewhere
