"""The site parent's state machine: its jobs and its link to the server, without any I/O.

:meth:`SiteState.handle` takes one event (:mod:`fedra.runtime.site_events`) and returns the
actions it calls for; it opens no socket, starts no thread or process, reads no clock and
touches no file: the shell (:class:`fedra.runtime.site_parent.SiteParent`) does all that.

A job on a site goes through these phases (one table, :data:`TRANSITIONS`)::

    CHECKING --> STARTING --> RUNNING --> STOPPING --> ENDED
       |  \\          |  \\        |           ^
       |   REFUSED    |   FAILED  +-> FAILED  |  (an end or abort while starting)
       +-> FAILED     +-----------------------+

Every task the server sends gets exactly one answer: the job's result, or an error result
(the job is unknown here, refused, not running, or its process is gone). A task still in
the hands of a job's process when the job ends is answered by that end itself (the server
ended the job, or hears that it failed): the machine records it as ``lost`` with the job.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from fedra.core import FLModel, InvalidTransition
from fedra.protocol import (
    UPLOAD_ASK_BYTES,
    AbortJob,
    EndJob,
    JobState,
    MayUpload,
    Request,
    Result,
    ResultRefused,
    StartJob,
    Task,
    UploadOk,
    Welcome,
    model_zip,
)
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
    JobChecked,
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

log = logging.getLogger("fedra.site")
#: Longest wait for the server's go-ahead to send a big result (then it is sent anyway).
GRANT_WAIT_S = 300.0


class JobPhase(enum.StrEnum):
    """Where a job stands on this site."""

    CHECKING = "checking"  # its archive is being unpacked and its signature checked
    STARTING = "starting"  # its process is being started
    RUNNING = "running"  # its process answers tasks
    STOPPING = "stopping"  # its process is being ended
    ENDED = "ended"  # ended as the server asked (or the site stopped)
    FAILED = "failed"  # could not start, or its process exited on its own
    REFUSED = "refused"  # this site will not run it

    @property
    def is_final(self) -> bool:
        """Nothing more happens to the job (until the server starts it again)."""
        return not TRANSITIONS[self]

    @property
    def has_process(self) -> bool:
        """A process of the job may be alive."""
        return self in (JobPhase.STARTING, JobPhase.RUNNING, JobPhase.STOPPING)


_P = JobPhase
TRANSITIONS: dict[JobPhase, frozenset[JobPhase]] = {
    _P.CHECKING: frozenset({_P.STARTING, _P.REFUSED, _P.FAILED, _P.ENDED}),
    _P.STARTING: frozenset({_P.RUNNING, _P.FAILED, _P.STOPPING}),
    _P.RUNNING: frozenset({_P.STOPPING, _P.FAILED}),
    _P.STOPPING: frozenset({_P.ENDED}),
    _P.ENDED: frozenset(),
    _P.FAILED: frozenset(),
    _P.REFUSED: frozenset(),
}


@dataclass
class SiteJobRecord:
    """One start of a job on this site (``run``) and where it stands."""

    job_id: str
    run: int
    sites: tuple[str, ...]
    phase: JobPhase = JobPhase.CHECKING
    #: Tasks handed to the job's process and not answered yet, by task id.
    pending: dict[str, Task] = field(default_factory=dict)
    #: Tasks its process still held when the job ended (answered by that end).
    lost: tuple[str, ...] = ()
    #: Why it was refused or failed.
    detail: str = ""

    def move(self, new: JobPhase) -> None:
        """Go to ``new``; InvalidTransition when the table does not allow it."""
        if new not in TRANSITIONS[self.phase]:
            raise InvalidTransition(self.phase, new)
        self.phase = new


@dataclass(frozen=True)
class _Held:
    """A big result waiting for the server's go-ahead (an upload grant)."""

    job_id: str
    result: Result
    model: FLModel | None
    deadline: float


class SiteState:
    """The jobs of site ``site`` and its link to the server: ``handle(event) -> actions``."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.jobs: dict[str, SiteJobRecord] = {}
        self.connected = False
        #: The service session of the server connected to (high availability), else None.
        self.ssid: int | None = None
        self._runs = 0
        self._held: dict[str, _Held] = {}  # upload grant id -> the result waiting for it

    # -- queries --------------------------------------------------------------------------
    def live_jobs(self) -> list[str]:
        """Jobs whose process is up (what heartbeats report)."""
        up = (JobPhase.RUNNING, JobPhase.STOPPING)
        return sorted(j for j, record in self.jobs.items() if record.phase in up)

    def phase(self, job_id: str) -> JobPhase | None:
        """Where the job stands here (None: never started here)."""
        record = self.jobs.get(job_id)
        return None if record is None else record.phase

    def held(self) -> dict[str, tuple[str, str]]:
        """The big results waiting for the server's go-ahead: grant id -> (job, task)."""
        return {key: (held.job_id, held.result.task_id) for key, held in self._held.items()}

    # -- events ---------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        """The actions ``event`` calls for (the state updated)."""
        match event:
            case Connected(ssid=ssid):
                self.connected, self.ssid = True, ssid
                return []
            case Disconnected():
                self.connected = False
                return self._release(lambda held: True)
            case FromServer(message=message, model=model):
                return self._from_server(message, model)
            case Tick(now=now):
                return self._release(lambda held: held.deadline <= now)
            case Shutdown():
                return [a for job_id in list(self.jobs) for a in self._end(job_id, abort=True)]
        return self._from_job(event)

    def _from_server(self, message: object, model: FLModel | None) -> list[Action]:
        match message:
            case Welcome(ssid=ssid) if self.ssid is not None and ssid != self.ssid:
                return [Disconnect(f"the server speaks for session {ssid}, not {self.ssid}")]
            case StartJob():
                return self._start(message, model_zip(model))
            case Task():
                return self._task(message, model)
            case AbortJob(job_id=job_id) | EndJob(job_id=job_id):
                return self._end(job_id, abort=isinstance(message, AbortJob))
            case Request():
                return [ServeRequest(message)]
            case UploadOk(id=grant_id):
                return self._release(lambda held: held is self._held.get(grant_id), grant_id)
            case ResultRefused(job_id=job_id, task_id=task_id, error=error):
                log.warning(
                    "the server refused our result for task %s of job %s: %s",
                    task_id,
                    job_id,
                    error,
                )
        return []

    def _from_job(self, event: Event) -> list[Action]:
        """An event of a job's process; ignored (a line in the log) when it belongs to a run
        a restart replaced."""
        job_id, run = getattr(event, "job_id", ""), getattr(event, "run", -1)
        record = self.jobs.get(job_id)
        if record is None or record.run != run:
            log.info("ignored %s of a former start of job %s", type(event).__name__, job_id)
            return []
        match event:
            case JobChecked():
                return self._checked(record, event)
            case JobReady():
                return self._ready(record)
            case JobStartFailed(detail=detail):
                return self._start_failed(record, detail)
            case JobResult():
                return self._result(record, event)
            case JobLog(log=entry) if record.phase.has_process and entry.job_id == job_id:
                return [SendToServer(entry)]
            case JobSendFailed(task=task) if record.pending.pop(task.task_id, None):
                return [self._error(task, "the site job process is gone")]
            case JobExited(detail=detail):
                return self._exited(record, detail)
        return []

    # -- a job's lifecycle ----------------------------------------------------------------
    def _start(self, start: StartJob, archive: bytes | None) -> list[Action]:
        actions: list[Action] = []
        if self._live(start.job_id):
            log.info("job %s restarted by the server: ending the old process", start.job_id)
            actions += self._end(start.job_id, abort=True, restart=True)
        if archive is None or self.site not in start.sites:
            why = "bad start_job message"
            return [
                *actions,
                SendToServer(JobState(job_id=start.job_id, state="failed", detail=why)),
            ]
        self._runs += 1
        self.jobs[start.job_id] = SiteJobRecord(start.job_id, self._runs, start.sites)
        return [*actions, CheckJob(start.job_id, self._runs, start, archive)]

    def _checked(self, record: SiteJobRecord, event: JobChecked) -> list[Action]:
        if record.phase is not JobPhase.CHECKING:
            return []
        if event.refusal is not None:
            record.move(JobPhase.REFUSED)
            record.detail = f"{self.site} refuses job {record.job_id}: {event.refusal}"
            log.warning("%s", record.detail)
            return [FreeResources(record.job_id), self._state(record, "failed")]
        if event.error is not None:
            return self._start_failed(record, event.error)
        record.move(JobPhase.STARTING)
        index, count = record.sites.index(self.site), len(record.sites)
        return [StartProcess(record.job_id, record.run, index, count)]

    def _ready(self, record: SiteJobRecord) -> list[Action]:
        if record.phase is JobPhase.STOPPING:  # ended while it started: end it now
            return [EndProcess(record.job_id, record.run, abort=True)]
        if record.phase is not JobPhase.STARTING:
            return []
        record.move(JobPhase.RUNNING)
        log.info("job %s started", record.job_id)
        return [self._state(record, "started")]

    def _start_failed(self, record: SiteJobRecord, detail: str) -> list[Action]:
        free = FreeResources(record.job_id, reclaim=True)
        if record.phase is JobPhase.STOPPING:
            record.move(JobPhase.ENDED)
            return [free]
        if record.phase not in (JobPhase.CHECKING, JobPhase.STARTING):
            return []
        record.move(JobPhase.FAILED)
        record.detail = detail
        log.error("job %s failed to start: %s", record.job_id, detail)
        return [free, self._state(record, "failed")]

    def _exited(self, record: SiteJobRecord, detail: str) -> list[Action]:
        if record.phase is JobPhase.STOPPING:
            record.move(JobPhase.ENDED)
            return [FreeResources(record.job_id)]
        if record.phase not in (JobPhase.STARTING, JobPhase.RUNNING):
            return []
        record.move(JobPhase.FAILED)
        record.detail = detail
        actions = self._close(record)
        log.error("job %s: %s", record.job_id, detail)
        return [*actions, FreeResources(record.job_id, reclaim=True), self._state(record, "failed")]

    def _end(self, job_id: str, abort: bool, restart: bool = False) -> list[Action]:
        """End (``abort``: at once) the job here, whatever its phase."""
        record = self.jobs.get(job_id)
        if record is None or record.phase.is_final:
            return [FreeResources(job_id)]  # reserved for a job that never started here
        if record.phase is JobPhase.CHECKING:
            record.move(JobPhase.ENDED)
            return [FreeResources(job_id, reclaim=True)]
        actions: list[Action] = []
        if record.phase is not JobPhase.STOPPING:
            record.move(JobPhase.STOPPING)
            actions += self._close(record)
            actions.append(EndProcess(job_id, record.run, abort=abort or restart))
            log.info("job %s %s", job_id, "aborted" if abort else "ended")
        if restart:  # the old process is gone once EndProcess is done: so is this run
            record.move(JobPhase.ENDED)
            actions.append(FreeResources(job_id))
        return actions

    def _close(self, record: SiteJobRecord) -> list[Action]:
        """The job's process will answer no more tasks: its held results go as they are."""
        record.lost, record.pending = tuple(record.pending), {}
        if record.lost:
            log.info("job %s ended with unanswered tasks: %s", record.job_id, list(record.lost))
        return self._release(lambda held: held.job_id == record.job_id)

    def _live(self, job_id: str) -> bool:
        record = self.jobs.get(job_id)
        return record is not None and not record.phase.is_final

    # -- tasks and results ----------------------------------------------------------------
    def _task(self, task: Task, model: FLModel | None) -> list[Action]:
        record = self.jobs.get(task.job_id)
        if record is None or record.phase is not JobPhase.RUNNING:
            refused = record is not None and record.phase is JobPhase.REFUSED
            why = record.detail if refused and record else f"job {task.job_id} is not running here"
            return [self._error(task, why)]
        record.pending[task.task_id] = task
        return [SendToJob(task.job_id, record.run, task, model)]

    def _result(self, record: SiteJobRecord, event: JobResult) -> list[Action]:
        result = event.result
        if result.job_id != record.job_id or record.pending.pop(result.task_id, None) is None:
            log.warning(
                "refused a result from the process of job %s: task %s of job %s is not its own",
                record.job_id,
                result.task_id[:64],
                result.job_id,
            )
            return []
        if event.nbytes > UPLOAD_ASK_BYTES and self.connected and event.grant_id:
            deadline = event.now + GRANT_WAIT_S
            self._held[event.grant_id] = _Held(record.job_id, result, event.model, deadline)
            return [SendToServer(MayUpload(id=event.grant_id, job_id=record.job_id))]
        return [SendToServer(result, event.model)]

    def _release(self, which: Callable[[_Held], bool], grant_id: str | None = None) -> list[Action]:
        """Send the held results ``which`` picks: under ``grant_id`` (the server's go-ahead),
        or as they are (the wait is over: the server's receive gate still orders them)."""
        actions: list[Action] = []
        for key, held in list(self._held.items()):
            if which(held):
                del self._held[key]
                result = held.result
                if grant_id is not None:
                    result = msgspec.structs.replace(result, grant=grant_id)
                actions.append(SendToServer(result, held.model))
        return actions

    def _error(self, task: Task, why: str) -> SendToServer:
        fields = {"job_id": task.job_id, "task_id": task.task_id, "task_name": task.task_name}
        return SendToServer(Result(**fields, site=self.site, error=why))

    def _state(self, record: SiteJobRecord, state: Literal["started", "failed"]) -> SendToServer:
        detail = record.detail if state == "failed" else ""
        return SendToServer(JobState(job_id=record.job_id, state=state, detail=detail))
