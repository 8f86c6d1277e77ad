"""The server parent's routing of running jobs, as a pure state machine (sans I/O).

:class:`Router` holds what the server parent knows about its running jobs and connected
sites: each job's phase, its sites, its tasks sent and not yet answered, and what its sites
said about it. :meth:`Router.handle` takes one event (a site joined or left, a decoded
message of a site or of a job process, a job started or ended, an abort, a step down) and
returns the actions that follow (send to a site, send to a job process, end a process,
record a status, give back upload slots). It does no I/O: no sockets, threads, store or
clock; the server parent executes the actions (:mod:`fedra.runtime.server_parent`) and
holds one lock around each call.

A running job's lifecycle, one transition table (:data:`PHASES`)::

    STARTING --> RUNNING --> ENDING --> ENDED
        |           |          |          ^
        +-----------+----------+--> ABORTING
        +-----------+----------+--> DETACHED (step down, shutdown: left RUNNING in the store)

A result is passed on at most once per task, and only for a RUNNING job; nothing is sent to
the sites or the process of a job after its abort, but its end.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from fedra.core import FedraError, JobStatus
from fedra.protocol import (
    Abort,
    AbortJob,
    EndJob,
    Go,
    Log,
    Message,
    Result,
    ResultRefused,
    SiteFailed,
    SiteLost,
    Sites,
    Task,
    TaskLost,
)
from fedra.runtime.routing_events import (
    AbortAsked,
    Action,
    EndProcess,
    Event,
    Failure,
    FreeUploads,
    JobDone,
    JobEnded,
    JobLaunched,
    JobRunning,
    Record,
    Refusals,
    Refused,
    ResultHead,
    ResultIn,
    SiteJoined,
    SiteLeft,
    SiteSays,
    StartOn,
    StepDown,
    TasksOut,
    ToJob,
    ToSite,
    Undelivered,
)
from fedra.runtime.routing_tasks import OutstandingTask, TaskTable

__all__ = [
    "PHASES",
    "AbortAsked",
    "Action",
    "EndProcess",
    "Event",
    "Failure",
    "FreeUploads",
    "IllegalPhase",
    "JobBook",
    "JobDone",
    "JobEnded",
    "JobLaunched",
    "JobRunning",
    "Phase",
    "Record",
    "Refusals",
    "Refused",
    "ResultHead",
    "ResultIn",
    "Router",
    "SiteJoined",
    "SiteLeft",
    "SiteSays",
    "StartOn",
    "StepDown",
    "TasksOut",
    "ToJob",
    "ToSite",
    "Undelivered",
    "final_record",
]


class Phase(enum.Enum):
    """Where a running job is in its life (in the server parent)."""

    STARTING = "starting"  # its process is up; RUNNING not recorded yet
    RUNNING = "running"  # its sites have been told; tasks and results flow
    ENDING = "ending"  # its workflows are done (DONE): waiting to record the end
    ABORTING = "aborting"  # aborted: its process is being ended
    DETACHED = "detached"  # step down or shutdown: the job stays RUNNING in the store
    ENDED = "ended"


PHASES: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.RUNNING, Phase.ABORTING, Phase.DETACHED, Phase.ENDED}),
    Phase.RUNNING: frozenset({Phase.ENDING, Phase.ABORTING, Phase.DETACHED, Phase.ENDED}),
    Phase.ENDING: frozenset({Phase.ABORTING, Phase.DETACHED, Phase.ENDED}),
    Phase.ABORTING: frozenset({Phase.DETACHED, Phase.ENDED}),
    Phase.DETACHED: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class IllegalPhase(FedraError):
    """A transition the table does not list."""


# -- state ----------------------------------------------------------------------------------
_Task = OutstandingTask


@dataclass
class JobBook:
    """One running job as the router knows it."""

    job_id: str
    sites: tuple[str, ...]
    phase: Phase = Phase.STARTING
    #: Tasks sent and not answered yet (task id -> its site and expectation).
    tasks: TaskTable = field(default_factory=TaskTable)
    #: Sites that started the job's process; those that refused it (site -> why).
    started: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)
    #: How the workflows ended (DONE), when they did.
    done: JobDone | None = None


class Router:
    """The running jobs and connected sites of a server parent (see the module)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobBook] = {}
        self.connected: set[str] = set()

    # -- queries --------------------------------------------------------------------------
    def phase(self, job_id: str) -> Phase:
        """A job's phase (ENDED for one not known here)."""
        book = self.jobs.get(job_id)
        return Phase.ENDED if book is None else book.phase

    def has_task(self, job_id: str, site: str) -> bool:
        """Whether a task of ``site`` in ``job_id`` waits for its result."""
        book = self.jobs.get(job_id)
        return book is not None and book.tasks.has_site(site)

    def takes_from(self, job_id: str, site: str) -> bool:
        """Whether ``site`` is one of the sites of a RUNNING job ``job_id``."""
        book = self.jobs.get(job_id)
        return book is not None and book.phase == Phase.RUNNING and site in book.sites

    def all_reported(self, job_id: str) -> bool:
        """Whether each connected site of the job has said whether it runs it."""
        book = self.jobs.get(job_id)
        if book is None:
            return True
        return all(
            s in book.started or s in book.refused or s not in self.connected for s in book.sites
        )

    # -- the one entry --------------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        """The actions that follow ``event``; IllegalPhase for a transition the table
        refuses (nothing has changed then)."""
        handler = _HANDLERS[type(event)]
        return handler(self, event)

    def _move(self, book: JobBook, new: Phase) -> None:
        if new not in PHASES[book.phase]:
            raise IllegalPhase(f"job {book.job_id}: {book.phase.value} -> {new.value}")
        book.phase = new

    # -- sites ----------------------------------------------------------------------------
    def _site_joined(self, event: SiteJoined) -> list[Action]:
        self.connected.add(event.site)
        actions: list[Action] = [
            StartOn(b.job_id, event.site)
            for b in self.jobs.values()
            if b.phase == Phase.RUNNING and event.site in b.sites
        ]
        return actions + self._sites_now()

    def _site_left(self, event: SiteLeft) -> list[Action]:
        self.connected.discard(event.site)
        actions: list[Action] = [FreeUploads(None, event.site)]
        for book in self._live():
            if event.site in book.sites:
                for task_id in book.tasks.of_site(event.site):
                    del book.tasks[task_id]
                actions.append(ToJob(book.job_id, SiteLost(event.site)))
        return actions + self._sites_now()

    def _sites_now(self) -> list[Action]:
        return [
            ToJob(b.job_id, Sites(tuple(s for s in b.sites if s in self.connected)))
            for b in self._live()
        ]

    def _live(self) -> Iterable[JobBook]:
        return [b for b in self.jobs.values() if b.phase in (Phase.STARTING, Phase.RUNNING)]

    # -- a job's start --------------------------------------------------------------------
    def _launched(self, event: JobLaunched) -> list[Action]:
        if event.job_id in self.jobs:
            raise IllegalPhase(f"job {event.job_id} runs already")
        self.jobs[event.job_id] = JobBook(event.job_id, event.sites)
        return []

    def _running(self, event: JobRunning) -> list[Action]:
        book = self.jobs.get(event.job_id)
        if book is None or book.phase != Phase.STARTING:
            return []  # aborted or detached meanwhile
        self._move(book, Phase.RUNNING)
        actions: list[Action] = [StartOn(book.job_id, s) for s in book.sites if s in self.connected]
        # Go after start_job: the sites see the job before any task.
        return [*actions, ToJob(book.job_id, Go())]

    # -- tasks and results ----------------------------------------------------------------
    def _tasks_out(self, event: TasksOut) -> list[Action]:
        book = self.jobs.get(event.job_id)
        if book is None or book.phase != Phase.RUNNING:
            return []  # nothing goes out for a job that is not running
        actions: list[Action] = []
        for target in event.targets:
            if target.site not in book.sites or target.site not in self.connected:
                actions.append(ToJob(book.job_id, TaskLost(target.task_id)))
                continue
            book.tasks[target.task_id] = _Task(target.site, event.expected)
            task = Task(book.job_id, target.task_id, event.task_name, target.site)
            actions.append(ToSite(target.site, task))
        return actions

    def _undelivered(self, event: Undelivered) -> list[Action]:
        book = self.jobs.get(event.job_id)
        if book is None or book.tasks.pop(event.task_id, None) is None:
            return []
        return [ToJob(book.job_id, TaskLost(event.task_id))] if book.phase == Phase.RUNNING else []

    def _find(self, site: str, result: Result) -> tuple[JobBook | None, _Task | None, str]:
        book = self.jobs.get(result.job_id)
        if book is None or book.phase != Phase.RUNNING:
            return None, None, f"job {result.job_id[:64]!r} is not running here"
        task = book.tasks.get(result.task_id)
        if task is None or task.site != site:
            why = (
                f"task {result.task_id[:64]!r} of job {result.job_id} is not outstanding for {site}"
            )
            return book, None, why
        return book, task, ""

    def _result_head(self, event: ResultHead) -> list[Action]:
        book, task, why = self._find(event.site, event.result)
        if book is not None and task is not None:
            if task.admitted:
                why = f"a result for task {event.result.task_id[:64]!r} is being received already"
                return self._refuse(event.site, event.result, why, spent=False)
            why = event.oversize or task.expected.check(event.tensors) or ""
            if not why:
                task.admitted = True
                return []
        return self._refuse(event.site, event.result, why)

    def _result_in(self, event: ResultIn) -> list[Action]:
        book, task, why = self._find(event.site, event.result)
        if book is None or task is None:
            return self._refuse(event.site, event.result, why)
        tensors = event.tensors if event.result.error is None else None
        why = "" if task.admitted else (task.expected.check(tensors) or "")
        if why:
            return self._refuse(event.site, event.result, why)
        del book.tasks[event.result.task_id]
        passed = msgspec.structs.replace(event.result, site=event.site)
        return [ToJob(book.job_id, passed)]

    def _refuse(self, site: str, result: Result, why: str, spent: bool = True) -> list[Action]:
        """The site hears why; the job gives the task up; a site with nothing left to
        upload in the job gives its upload slot back."""
        refused = ToSite(site, _refusal(result, why))
        actions: list[Action] = [Refused(site, result.job_id, result.task_id, why), refused]
        book = self.jobs.get(result.job_id)
        if book is None or site not in book.sites:
            return actions
        task = book.tasks.get(result.task_id)
        # Only a task of this site that this refusal answers is given up: another site's
        # task, or one whose first copy is being received, still waits for its result.
        if spent and task is not None and task.site == site:
            del book.tasks[result.task_id]
            if book.phase == Phase.RUNNING:
                actions.append(ToJob(book.job_id, TaskLost(result.task_id)))
        if not self.has_task(book.job_id, site):
            actions.append(FreeUploads(book.job_id, site))
        return actions

    # -- what sites say -------------------------------------------------------------------
    def _site_says(self, event: SiteSays) -> list[Action]:
        message, site = event.message, event.site
        book = self.jobs.get(message.job_id)
        if book is None or site not in book.sites:
            return []
        if isinstance(message, Log):
            if book.phase != Phase.RUNNING:
                return []
            return [ToJob(book.job_id, msgspec.structs.replace(message, site=site))]
        if book.phase not in (Phase.RUNNING, Phase.ENDING):
            return []  # (while ENDING: whether the sites ran it decides how it ends)
        actions: list[Action] = []
        if message.state == "started":
            book.started.add(site)
            book.refused.pop(site, None)
        elif message.state == "failed" and site not in book.started:
            book.refused[site] = message.detail  # never ran it: a refusal
            actions.append(Refusals(book.job_id, dict(sorted(book.refused.items()))))
        if message.state == "failed" and book.phase == Phase.RUNNING:
            detail = f"the site's job process failed:\n{message.detail}"
            actions.append(ToJob(book.job_id, SiteFailed(site, detail)))
        return actions

    # -- a job's end ----------------------------------------------------------------------
    def _done(self, event: JobDone) -> list[Action]:
        book = self.jobs.get(event.job_id)
        if book is None or book.phase != Phase.RUNNING:
            return []
        self._move(book, Phase.ENDING)
        book.done = event
        book.tasks.clear()
        return []

    def _abort(self, event: AbortAsked) -> list[Action]:
        book = self.jobs.get(event.job_id)
        if book is None or book.phase in (Phase.ABORTING, Phase.DETACHED, Phase.ENDED):
            return []
        told = book.phase != Phase.STARTING  # its sites heard of it
        self._move(book, Phase.ABORTING)
        book.tasks.clear()
        actions: list[Action] = [ToJob(book.job_id, Abort(event.reason)), EndProcess(book.job_id)]
        if told:
            actions += [ToSite(s, AbortJob(book.job_id, event.reason)) for s in book.sites]
        return [*actions, FreeUploads(book.job_id)]

    def _step_down(self, event: StepDown) -> list[Action]:
        del event
        actions: list[Action] = []
        for book in self.jobs.values():
            if book.phase != Phase.DETACHED:
                self._move(book, Phase.DETACHED)
                book.tasks.clear()
                actions += [EndProcess(book.job_id), FreeUploads(book.job_id)]
        return actions

    def _ended(self, event: JobEnded) -> list[Action]:
        book = self.jobs.pop(event.job_id, None)
        if book is None:
            return []
        before = book.phase
        self._move(book, Phase.ENDED)
        actions: list[Action] = [FreeUploads(book.job_id)]
        if before == Phase.DETACHED:
            return actions  # the job stays RUNNING: whoever resumes it ends it
        end = AbortJob if before == Phase.ABORTING else EndJob
        actions += [ToSite(s, end(book.job_id)) for s in book.sites]
        if before == Phase.ABORTING:
            return actions  # recorded by whoever aborted it
        if book.done is None:
            reason = f"the server job process exited with code {event.code}"
            failure = Failure("server", None, event.log_tail, reason)
            status = JobStatus.FINISHED_EXECUTION_EXCEPTION
            return [*actions, Record(book.job_id, status, reason, failure)]
        return [*actions, final_record(book, event.min_clients)]


def final_record(book: JobBook, min_clients: int) -> Record:
    """How a job whose workflows ended (``book.done``) is recorded, given what its sites
    said: a job that fewer than ``min_clients`` sites ran (every other one refused or failed
    it) ends FINISHED:EXECUTION_EXCEPTION, never COMPLETED."""
    assert book.done is not None
    done, refused = book.done.done, dict(sorted(book.refused.items()))
    status, reason = book.done.status, done.error or "all workflows finished"
    ran = [s for s in book.sites if s not in refused]
    if status == JobStatus.FINISHED_COMPLETED and refused and len(ran) < max(min_clients, 1):
        # RUNNING -> FINISHED:EXECUTION_EXCEPTION (FAILED_TO_RUN is only reachable before
        # RUNNING, see fedra.core.status).
        why = "; ".join(f"{site}: {_first_line(detail)}" for site, detail in refused.items())
        status = JobStatus.FINISHED_EXECUTION_EXCEPTION
        reason = (
            f"{len(refused)} of {len(book.sites)} sites refused or failed the job "
            f"({len(ran)} ran it, min_clients={min_clients}): {why}"
        )
    failure = None
    if done.failed_site:
        failure = Failure(done.failed_site, done.failed_task, done.traceback, reason)
    elif refused:
        site = next(iter(refused))
        failure = Failure(site, done.failed_task, refused[site], reason)
    return Record(book.job_id, status, reason, failure)


_HANDLERS: dict[type, Callable[[Router, Event], list[Action]]] = {
    SiteJoined: Router._site_joined,  # type: ignore[dict-item]
    SiteLeft: Router._site_left,  # type: ignore[dict-item]
    JobLaunched: Router._launched,  # type: ignore[dict-item]
    JobRunning: Router._running,  # type: ignore[dict-item]
    TasksOut: Router._tasks_out,  # type: ignore[dict-item]
    Undelivered: Router._undelivered,  # type: ignore[dict-item]
    ResultHead: Router._result_head,  # type: ignore[dict-item]
    ResultIn: Router._result_in,  # type: ignore[dict-item]
    SiteSays: Router._site_says,  # type: ignore[dict-item]
    JobDone: Router._done,  # type: ignore[dict-item]
    JobEnded: Router._ended,  # type: ignore[dict-item]
    AbortAsked: Router._abort,  # type: ignore[dict-item]
    StepDown: Router._step_down,  # type: ignore[dict-item]
}


def _refusal(result: Result, why: str) -> Message:
    return ResultRefused(result.job_id, result.task_id, why)


def _first_line(detail: str) -> str:
    lines = [line for line in detail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "failed"
