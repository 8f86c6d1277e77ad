"""The events the router (:mod:`fedra.runtime.routing`) takes and the actions it returns."""

from __future__ import annotations

from dataclasses import dataclass

from fedra.core import JobStatus
from fedra.protocol import Done, JobState, Log, Message, Result, Target
from fedra.serverapp.resultspec import Expectation
from fedra.wire import TensorHead


# -- events ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SiteJoined:
    """A site connected (admitted)."""

    site: str


@dataclass(frozen=True)
class SiteLeft:
    """A site's connection ended."""

    site: str


@dataclass(frozen=True)
class JobLaunched:
    """A job's process is up and ready."""

    job_id: str
    sites: tuple[str, ...]


@dataclass(frozen=True)
class JobRunning:
    """RUNNING is recorded: the sites may hear of the job."""

    job_id: str


@dataclass(frozen=True)
class TasksOut:
    """A job process sent a task for one site (Task) or many (Broadcast)."""

    job_id: str
    task_name: str
    targets: tuple[Target, ...]
    expected: Expectation


@dataclass(frozen=True)
class Undelivered:
    """A task could not be sent to its site."""

    job_id: str
    task_id: str


@dataclass(frozen=True)
class ResultHead:
    """A big result's header at the receive gate (``oversize``: why its size is a lie)."""

    site: str
    result: Result
    tensors: tuple[TensorHead, ...] | None
    oversize: str | None = None


@dataclass(frozen=True)
class ResultIn:
    """A result has arrived from ``site``."""

    site: str
    result: Result
    tensors: tuple[TensorHead, ...] | None


@dataclass(frozen=True)
class SiteSays:
    """A site's job state or log entry."""

    site: str
    message: JobState | Log


@dataclass(frozen=True)
class JobDone:
    """A job's process said its workflows have ended (``done``), with ``status``."""

    job_id: str
    status: JobStatus
    done: Done


@dataclass(frozen=True)
class JobEnded:
    """A job's process is gone (``code``: its exit code; ``log_tail``: the end of its log);
    ``min_clients`` of the job."""

    job_id: str
    code: int | None
    min_clients: int
    log_tail: str = ""


@dataclass(frozen=True)
class AbortAsked:
    """Abort a job (recorded FINISHED:ABORTED already, or RUNNING could not be recorded)."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class StepDown:
    """The server stops acting (step down, shutdown): jobs stay RUNNING in the store."""


Event = (
    SiteJoined
    | SiteLeft
    | JobLaunched
    | JobRunning
    | TasksOut
    | Undelivered
    | ResultHead
    | ResultIn
    | SiteSays
    | JobDone
    | JobEnded
    | AbortAsked
    | StepDown
)


# -- actions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToSite:
    """Send ``message`` to ``site`` (a Task: with its job's model)."""

    site: str
    message: Message


@dataclass(frozen=True)
class StartOn:
    """Send the job's StartJob (its zip beside it) to ``site``."""

    job_id: str
    site: str


@dataclass(frozen=True)
class ToJob:
    """Send ``message`` to the job's process (a Result: with the model that came)."""

    job_id: str
    message: Message


@dataclass(frozen=True)
class Refused:
    """A result was refused (``why``): logged; the site has been told."""

    site: str
    job_id: str
    task_id: str
    why: str


@dataclass(frozen=True)
class EndProcess:
    """End the job's process (aborted, or detached)."""

    job_id: str


@dataclass(frozen=True)
class FreeUploads:
    """Give back the upload grants of ``site`` for ``job_id`` (all its grants: None), or,
    with no site, every upload slot of the job."""

    job_id: str | None
    site: str | None = None


@dataclass(frozen=True)
class Failure:
    """Which site failed a job, in which task, how (recorded with the job)."""

    site: str | None
    task: str | None
    traceback: str | None
    reason: str


@dataclass(frozen=True)
class Record:
    """Record the job's end: its status, why, and the site that failed it (if one did)."""

    job_id: str
    status: JobStatus
    reason: str
    failure: Failure | None = None


@dataclass(frozen=True)
class Refusals:
    """Record the sites that refused the job (site -> why) in its run info."""

    job_id: str
    refused: dict[str, str]


Action = ToSite | StartOn | ToJob | Refused | EndProcess | FreeUploads | Record | Refusals
