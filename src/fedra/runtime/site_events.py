"""What goes into the site's state machine (events) and what comes out of it (actions).

The site parent's shell (:class:`fedra.runtime.site_parent.SiteParent`) turns what happens
around it (a connection, a message from the server, a job process that is ready, answers or
exits, the clock) into events for :class:`fedra.runtime.site_state.SiteState`, and carries
out the actions it gets back: sending, starting and ending processes, freeing resources.
Events from a job process name its ``run``: the start it belongs to, so that a late word of
a process a restart replaced is told apart from the new one's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedra.core import FLModel
from fedra.protocol import Log, Message, Request, Result, StartJob, Task


# -- events ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Connected:
    """A connection to the server is up (``ssid``: the service session it serves)."""

    ssid: int | None = None


@dataclass(frozen=True)
class Disconnected:
    """The connection to the server is gone."""


@dataclass(frozen=True)
class FromServer:
    """A message the server sent (decoded), and the model or archive beside it."""

    message: Message
    model: FLModel | None = None


@dataclass(frozen=True)
class JobChecked:
    """The site checked a job (signature, policy): ``refusal`` says why it will not run it,
    ``error`` why the check could not be done."""

    job_id: str
    run: int
    refusal: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class JobReady:
    """A job's process is up and connected."""

    job_id: str
    run: int


@dataclass(frozen=True)
class JobStartFailed:
    """A job's process could not be started (no resources, no process, no ready)."""

    job_id: str
    run: int
    detail: str


@dataclass(frozen=True)
class JobResult:
    """A job's process answered a task; ``nbytes``: its model's size; ``grant_id``: a fresh
    id for the upload grant a big result asks for; ``now``: the monotonic clock."""

    job_id: str
    run: int
    result: Result
    model: FLModel | None = None
    nbytes: int = 0
    grant_id: str = ""
    now: float = 0.0


@dataclass(frozen=True)
class JobLog:
    """A job's process reported a metric."""

    job_id: str
    run: int
    log: Log


@dataclass(frozen=True)
class JobSendFailed:
    """A task could not be handed to a job's process (its channel is gone)."""

    job_id: str
    run: int
    task: Task


@dataclass(frozen=True)
class JobExited:
    """A job's process has exited (``detail``: its exit code and the tail of its log)."""

    job_id: str
    run: int
    detail: str = ""


@dataclass(frozen=True)
class Tick:
    """Time has passed (monotonic clock): held big results past their wait are sent."""

    now: float


@dataclass(frozen=True)
class Shutdown:
    """The site is stopping: every job ends."""


Event = (
    Connected
    | Disconnected
    | FromServer
    | JobChecked
    | JobReady
    | JobStartFailed
    | JobResult
    | JobLog
    | JobSendFailed
    | JobExited
    | Tick
    | Shutdown
)


# -- actions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendToServer:
    """Send ``message`` (``model`` beside it) to the server; dropped when not connected."""

    message: Message
    model: FLModel | None = None


@dataclass(frozen=True)
class SendToJob:
    """Hand a task to a running job's process (JobSendFailed when that fails)."""

    job_id: str
    run: int
    task: Task
    model: FLModel | None = None


@dataclass(frozen=True)
class CheckJob:
    """Unpack the job's archive and check it (answer: JobChecked)."""

    job_id: str
    run: int
    start: StartJob
    archive: bytes


@dataclass(frozen=True)
class StartProcess:
    """Allocate the job's resources and start its process (answer: JobReady or
    JobStartFailed; then JobExited once it has been started)."""

    job_id: str
    run: int
    index: int
    num_sites: int


@dataclass(frozen=True)
class EndProcess:
    """End a job's process: in order (Stop, then wait) or, ``abort``, at once; its folder
    is the parent's again. Its exit comes back as JobExited."""

    job_id: str
    run: int
    abort: bool


@dataclass(frozen=True)
class FreeResources:
    """Give back what the job holds on this site; ``reclaim``: its folder too."""

    job_id: str
    reclaim: bool = False


@dataclass(frozen=True)
class ServeRequest:
    """Answer a request relayed from an admin."""

    request: Request


@dataclass(frozen=True)
class Disconnect:
    """Drop the connection (the server is stale)."""

    reason: str


Action = (
    SendToServer
    | SendToJob
    | CheckJob
    | StartProcess
    | EndProcess
    | FreeResources
    | ServeRequest
    | Disconnect
)
