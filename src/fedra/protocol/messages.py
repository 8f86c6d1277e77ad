"""One frozen struct per message between Fedra's processes, and the two conversions.

Grouped by link. A message's fields are its envelope's headers; a model (a task's data, a
result) or an archive (a job's zip, an admin upload or download) travels beside them in the
envelope and is passed to :func:`encode` / read from ``envelope.model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import msgspec
import numpy as np

from fedra.core import FedraError, FLModel
from fedra.protocol.fields import Amounts, Detail, JobId, Metric, Names, Text
from fedra.wire import Envelope

#: A site asks (MayUpload) before sending a result with more model bytes than this: the
#: server lets one big result of a job come in at a time, and a site that waits its turn
#: then holds nothing in the server (not even a stream's receive window).
UPLOAD_ASK_BYTES = 1 << 20
#: Exit code of a parent process asking its start script to start it again.
RESTART_EXIT_CODE = 75


class BadMessage(FedraError):
    """A message of a kind its link does not carry, or whose headers lack a field or hold a
    value of the wrong type."""


class _Message(msgspec.Struct, frozen=True):
    KIND: ClassVar[str]


# -- site parent -> server parent (FL port) ------------------------------------------------
class Hello(_Message, frozen=True):
    """A site has connected: its name, resources, running jobs, and the service session it
    follows (high availability)."""

    KIND: ClassVar[str] = "hello"
    site: Text = ""
    resources: dict[Text, Amounts] | None = None
    jobs: Names = ()
    ssid: int | None = None


class Heartbeat(_Message, frozen=True):
    """A site is alive: the jobs it runs and its resources now."""

    KIND: ClassVar[str] = "heartbeat"
    jobs: Names = ()
    resources: dict[Text, Amounts] | None = None


class Session(_Message, frozen=True):
    """The site leaves for this newer service session (high availability)."""

    KIND: ClassVar[str] = "session"
    ssid: int


class Result(_Message, frozen=True):
    """The answer to a task (the model beside it), or ``error`` when the site failed it;
    ``grant``: the upload grant a big result is sent under. The site job process leaves
    ``site`` empty; the server parent fills it in from the connection."""

    KIND: ClassVar[str] = "result"
    job_id: JobId
    task_id: Text
    task_name: Text
    site: Text = ""
    error: Detail | None = None
    grant: Text | None = None


class Log(_Message, frozen=True):
    """One metric value a site's training code reported."""

    KIND: ClassVar[str] = "log"
    job_id: JobId
    key: Text
    value: float
    step: int | None = None
    site: Text = ""


class JobState(_Message, frozen=True):
    """A site started a job's process, refused or failed it, or ended it."""

    KIND: ClassVar[str] = "job_state"
    job_id: JobId
    state: Literal["started", "failed", "ended"]
    detail: Detail = ""


class MayUpload(_Message, frozen=True):
    """A big result of ``job_id`` is ready (grant id ``id``): may it be sent?"""

    KIND: ClassVar[str] = "may_upload"
    id: Text
    job_id: JobId


class Reply(_Message, frozen=True):
    """The answer to a Request (site) or an AdminRequest (server), under the request's id."""

    KIND: ClassVar[str] = "reply"
    id: Text
    ok: bool
    data: Any = None
    error: Detail | None = None
    hint: Detail | None = None


# -- server parent -> site parent ----------------------------------------------------------
class Welcome(_Message, frozen=True):
    """The server's first word on a connection: its name and service session, and the
    seconds it asks the site to leave at least between two heartbeats (None: the site's
    own interval; a server with many sites asks for fewer, see
    :func:`fedra.runtime.server_sites.heartbeat_interval`)."""

    KIND: ClassVar[str] = "welcome"
    server: Text
    ssid: int | None = None
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None


class StartJob(_Message, frozen=True):
    """Start a job (its zip beside it) for these sites; the submitter's signature and
    certificate, which each site checks itself."""

    KIND: ClassVar[str] = "start_job"
    job_id: JobId
    sites: Names
    signature: Detail | None = None
    certificate: Detail | None = None


class Task(_Message, frozen=True):
    """A task for one site (its data beside it)."""

    KIND: ClassVar[str] = "task"
    job_id: JobId
    task_id: Text
    task_name: Text
    site: Text = ""


class AbortJob(_Message, frozen=True):
    """Abort the job here (its processes end at once)."""

    KIND: ClassVar[str] = "abort_job"
    job_id: JobId
    reason: Detail = ""


class EndJob(_Message, frozen=True):
    """The job has ended: stop its process in order."""

    KIND: ClassVar[str] = "end_job"
    job_id: JobId


class Request(_Message, frozen=True):
    """A request to a site, answered with a Reply under ``id`` (none: no answer wanted):
    sys_info, tail, cat, head, grep, ls, pwd, env, reserve, free, resources, shutdown, restart."""

    KIND: ClassVar[str] = "request"
    cmd: Text
    id: Text = ""
    args: dict[Text, Any] = {}


class UploadOk(_Message, frozen=True):
    """Send the big result of grant ``id`` now."""

    KIND: ClassVar[str] = "upload_ok"
    id: Text


class ResultRefused(_Message, frozen=True):
    """The server refused a result of this site (``error`` says why)."""

    KIND: ClassVar[str] = "result_refused"
    job_id: JobId
    task_id: Text
    error: Detail


# -- server job <-> server parent ----------------------------------------------------------
class Ready(_Message, frozen=True):
    """A job process is up (server job or site job)."""

    KIND: ClassVar[str] = "ready"
    job_id: JobId


class Target(msgspec.Struct, frozen=True):
    """One site of a Broadcast, with the id of its task."""

    site: Text
    task_id: Text


class Broadcast(_Message, frozen=True):
    """One task for many sites (the same data beside it): the parent fans it out."""

    KIND: ClassVar[str] = "broadcast"
    job_id: JobId
    task_name: Text
    targets: tuple[Target, ...]


class Round(_Message, frozen=True):
    """A workflow finished a round (for show_stats and progress in the log)."""

    KIND: ClassVar[str] = "round"
    workflow: Text
    round: int
    metrics: dict[Text, Metric] = {}
    seconds: float = 0.0
    #: Its place in the job's history (every workflow's rounds, in order, since the job
    #: began): after a resume, a round run again has the place of its earlier record, which
    #: it replaces with the records after it. None: after the records there are.
    index: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: The sites whose results the round counted, in the order they came.
    sites: tuple[Text, ...] = ()


class Done(_Message, frozen=True):
    """The job's workflows have ended: how, and which site failed it when one did."""

    KIND: ClassVar[str] = "done"
    status: Text
    error: Detail | None = None
    failed_site: Text | None = None
    failed_task: Text | None = None
    traceback: Detail | None = None


class Sites(_Message, frozen=True):
    """The job's sites connected now."""

    KIND: ClassVar[str] = "sites"
    sites: Names


class Go(_Message, frozen=True):
    """The sites have been told to start the job: the workflow may begin."""

    KIND: ClassVar[str] = "go"


class Abort(_Message, frozen=True):
    """Abort the run."""

    KIND: ClassVar[str] = "abort"
    reason: Detail = "aborted"


class TaskLost(_Message, frozen=True):
    """This task will not be answered (its site could not be reached, or its result was
    refused)."""

    KIND: ClassVar[str] = "task_lost"
    task_id: Text


class SiteLost(_Message, frozen=True):
    """This site left: none of its outstanding tasks will be answered."""

    KIND: ClassVar[str] = "site_lost"
    site: Text


class SiteFailed(_Message, frozen=True):
    """The job process of ``site`` failed (or the site refused the job)."""

    KIND: ClassVar[str] = "site_failed"
    site: Text
    detail: Detail = ""


# -- site parent -> site job ---------------------------------------------------------------
class Stop(_Message, frozen=True):
    """Finish: the job has ended."""

    KIND: ClassVar[str] = "stop"


# -- admin client -> server parent (admin port) --------------------------------------------
class AdminRequest(_Message, frozen=True):
    """An admin command (an archive beside it for submit_job), answered with a Reply."""

    KIND: ClassVar[str] = "admin"
    id: Text
    cmd: Text
    args: dict[Text, Any] = {}


Message: TypeAlias = (
    Hello
    | Heartbeat
    | Session
    | Result
    | Log
    | JobState
    | MayUpload
    | Reply
    | Welcome
    | StartJob
    | Task
    | AbortJob
    | EndJob
    | Request
    | UploadOk
    | ResultRefused
    | Ready
    | Broadcast
    | Round
    | Done
    | Sites
    | Go
    | Abort
    | TaskLost
    | SiteLost
    | SiteFailed
    | Stop
    | AdminRequest
)

#: Every kind, and its struct.
KINDS: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        Heartbeat,
        Session,
        Result,
        Log,
        JobState,
        MayUpload,
        Reply,
        Welcome,
        StartJob,
        Task,
        AbortJob,
        EndJob,
        Request,
        UploadOk,
        ResultRefused,
        Ready,
        Broadcast,
        Round,
        Done,
        Sites,
        Go,
        Abort,
        TaskLost,
        SiteLost,
        SiteFailed,
        Stop,
        AdminRequest,
    )
}

#: What each link carries (the receiving end refuses other kinds).
FROM_SITE: frozenset[type[Message]] = frozenset(
    {Hello, Heartbeat, Session, Result, Log, JobState, MayUpload, Reply}
)
TO_SITE: frozenset[type[Message]] = frozenset(
    {Welcome, StartJob, Task, AbortJob, EndJob, Request, UploadOk, ResultRefused}
)
FROM_SERVER_JOB: frozenset[type[Message]] = frozenset({Ready, Task, Broadcast, Round, Done})
TO_SERVER_JOB: frozenset[type[Message]] = frozenset(
    {Result, Log, Go, Sites, Abort, TaskLost, SiteLost, SiteFailed}
)
FROM_SITE_JOB: frozenset[type[Message]] = frozenset({Ready, Result, Log, JobState})
TO_SITE_JOB: frozenset[type[Message]] = frozenset({Task, Stop})
FROM_ADMIN: frozenset[type[Message]] = frozenset({AdminRequest})
TO_ADMIN: frozenset[type[Message]] = frozenset({Reply})


def encode(message: Message, model: FLModel | None = None) -> Envelope:
    """The envelope that carries ``message`` (and ``model`` beside it)."""
    headers = msgspec.to_builtins(message)
    return Envelope(message.KIND, headers, model)


def decode(envelope: Envelope, accepted: frozenset[type[Message]]) -> Message:
    """The message an envelope carries; BadMessage for a kind not ``accepted`` here or for
    headers that do not fit the kind."""
    return decode_headers(envelope.kind, envelope.headers, accepted)


def decode_headers(
    kind: str, headers: Mapping[str, object], accepted: frozenset[type[Message]]
) -> Message:
    """The message of ``kind`` with these headers (a frame's head, read before its body)."""
    cls = KINDS.get(kind)
    if cls is None or cls not in accepted:
        raise BadMessage(f"a {kind[:40]!r} message is not expected here")
    try:
        return msgspec.convert(headers, type=cls)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{kind}: {exc}") from None


def zip_model(data: bytes) -> FLModel:
    """Bytes as a model with one uint8 array (how archives travel)."""
    return FLModel(params={"zip": np.frombuffer(data, dtype=np.uint8)})


def model_zip(model: FLModel | None) -> bytes | None:
    """The bytes carried by :func:`zip_model`, or None."""
    if model is None or model.params is None or "zip" not in model.params:
        return None
    array = model.params["zip"]
    if array.dtype != np.uint8 or array.ndim != 1:
        return None
    return array.tobytes()
