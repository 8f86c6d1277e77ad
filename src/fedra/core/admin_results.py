"""What each admin command answers: one msgspec Struct per result, shared by server and client.

The server's handlers build these and the reply's ``data`` is their JSON form
(:func:`result_data`); the client turns a reply's ``data`` back into the declared type in one
place (:func:`decode_result`, used by :class:`fedra.admin.Session`), so a malformed reply is
one error naming the command and the field. Each command declares its result type in
:mod:`fedra.core.admin_spec`.

Values that are really arbitrary JSON (a job's ``run_info``, a failure record, per-round
metrics) are typed :data:`JsonValue` / :data:`JsonObject`.

Pure: no I/O.
"""

from __future__ import annotations

from typing import TypeAlias, TypeVar

import msgspec

from fedra.core.jsonfile import JsonObject, JsonValue
from fedra.core.status import JobStatus

R = TypeVar("R", bound=msgspec.Struct)


class BadReply(ValueError):
    """A reply's ``data`` does not match the command's declared result type (one line)."""


class Done(msgspec.Struct, frozen=True):
    """The answer of a command that acts and returns nothing (``{}``)."""


class JobCreated(msgspec.Struct, frozen=True):
    """``submit_job`` and ``clone_job``: the new job's id."""

    job_id: str


class StatusEntry(msgspec.Struct, frozen=True):
    """One recorded transition of a job."""

    status: JobStatus
    at: float
    reason: str = ""


class JobInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """A job as an admin sees it; the fields after ``duration_s`` only when detailed
    (``get_job``, ``wait``, ``list_jobs -d``)."""

    job_id: str
    name: str
    status: JobStatus
    submitter: str
    submitted_at: float
    duration_s: float
    history: list[StatusEntry] | None = None
    #: What a submitted job waits for (resources, sites), while it waits.
    waiting: str | None = None
    failure: JsonObject | None = None
    run_info: JsonObject | None = None


class JobList(msgspec.Struct, frozen=True):
    """``list_jobs``: the jobs the admin may see, oldest first."""

    jobs: list[JobInfo]


class RunningJob(msgspec.Struct, frozen=True):
    """A running job in ``check_status server``."""

    job_id: str
    name: str
    status: JobStatus


class ServerStatus(msgspec.Struct, frozen=True, tag_field="target", tag="server"):
    """``check_status server``: the server's state, its running jobs and registered sites."""

    status: str
    start_time: float
    jobs: list[RunningJob]
    sites: list[str]


class SiteCapacity(msgspec.Struct, frozen=True):
    """A site's declared (``total``) and last reported free resources, as JSON."""

    total: JsonObject | None = None
    free: JsonObject | None = None


class SiteState(msgspec.Struct, frozen=True):
    """One connected site in ``check_status client``."""

    name: str
    org: str
    connected: bool
    last_seen_s: float
    jobs: list[str]
    resources: SiteCapacity | None = None


class SitesStatus(msgspec.Struct, frozen=True, tag_field="target", tag="client"):
    """``check_status client``: every connected site the admin may see."""

    sites: list[SiteState]


#: What ``check_status`` answers, told apart by its ``target`` field.
Status: TypeAlias = ServerStatus | SitesStatus


class AbortResult(msgspec.Struct, frozen=True):
    """``abort_job``: the job's status after the request."""

    job_id: str
    status: JobStatus


class Downloaded(msgspec.Struct, frozen=True):
    """``download_job``: how many files the zip beside the reply holds."""

    files: int


class JobStats(msgspec.Struct, frozen=True):
    """``show_stats``: a job's progress (per round: metrics, seconds, the sites it counted)."""

    status: JobStatus
    rounds: list[JsonObject] = []
    sites: list[JsonValue] = []


class JobErrors(msgspec.Struct, frozen=True, omit_defaults=True):
    """``show_errors``: why a job failed, and the errors sites reported (since the last
    ``reset_errors``, whose time is ``reset_at``)."""

    failure: JsonObject | None
    errors: list[str]
    reset_at: float | None = None


class FileText(msgspec.Struct, frozen=True):
    """``tail`` and ``cat``: text of a participant's file."""

    text: str


class SysInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """``sys_info``: host information of the server (ports, cpus) or of a site (its jobs)."""

    name: str
    pid: int
    python: str
    platform: str
    cpus: int | None = None
    fed_port: int | None = None
    admin_port: int | None = None
    jobs: list[str] | None = None


class ServiceProvider(msgspec.Struct, frozen=True):
    """One server the overseer knows (high availability)."""

    name: str
    address: str
    state: str | None
    hot: bool
    live: bool
    age_s: float | None
    #: Why ``state`` (the one it last reported) is not the whole story, when it is not:
    #: not live since when, and when a standby takes over (see docs/ha.md).
    note: str | None = None


class SpState(msgspec.Struct, frozen=True):
    """``list_sp`` and ``promote_sp``: the overseer's view of the servers."""

    ssid: int | None
    hot: str | None
    servers: list[ServiceProvider]


class ActiveSp(msgspec.Struct, frozen=True):
    """``get_active_sp``: the hot server and the service session id."""

    hot: str | None
    ssid: int | None


class AdminIdentity(msgspec.Struct, frozen=True):
    """Who the server knows the admin as (from the connection's certificate)."""

    name: str
    org: str
    role: str


class ServerInfo(msgspec.Struct, frozen=True):
    """``info``: the project, this server, Fedra's version, who the admin is and what each
    right's scope is, and whether the federation is highly available (and who is hot)."""

    project: str
    server: str
    org: str
    version: str
    started: float
    admin: AdminIdentity
    #: The admin's scope per right, under the server's policy.
    scopes: dict[str, str]
    policy: str
    ha: bool
    #: The hot server (this one: only the hot server answers admins).
    hot: str
    ssid: int | None = None


class Workspace(msgspec.Struct, frozen=True):
    """``pwd``: a participant's workspace folder, and what admins may name in it."""

    name: str
    root: str
    readable: list[str]


class DirEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entry of a listing: ``kind`` is ``file``, ``dir``, ``link`` or ``other`` (links
    are shown, never followed); ``size`` for files."""

    name: str
    kind: str
    mtime: float
    size: int | None = None


class Listing(msgspec.Struct, frozen=True):
    """``ls``: a folder of a participant's workspace (names relative to ``path``);
    ``truncated`` when there was more than the bound."""

    participant: str
    path: str
    entries: list[DirEntry]
    truncated: bool = False


class EnvInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """``env``: a participant's runtime facts (never its environment variables): Fedra and
    Python versions, the platform, CPUs and memory, key packages, declared resources."""

    name: str
    fedra: str
    python: str
    implementation: str
    platform: str
    machine: str
    cpus: int | None = None
    memory_bytes: int | None = None
    packages: dict[str, str] = {}
    resources: JsonObject | None = None


class SiteResourcesEntry(msgspec.Struct, frozen=True):
    """One site's resources as the scheduler sees them: declared, free now, and its jobs."""

    name: str
    org: str
    total: JsonObject | None
    free: JsonObject | None
    jobs: list[str]


class ResourceReport(msgspec.Struct, frozen=True):
    """``report_resources``: every connected site the admin may see."""

    sites: list[SiteResourcesEntry]


class ErrorsReset(msgspec.Struct, frozen=True):
    """``reset_errors``: how many recorded errors ``show_errors`` no longer shows."""

    job_id: str
    cleared: int
    at: float


class SessionTimeout(msgspec.Struct, frozen=True):
    """``set_timeout``: the console session's reply timeout now, in seconds."""

    seconds: float


def result_data(result: msgspec.Struct) -> JsonObject:
    """A result as the reply's ``data`` (JSON values only)."""
    data: JsonObject = msgspec.to_builtins(result)
    return data


def decode_result(cmd: str, data: object, kind: type[R]) -> R:
    """A reply's ``data`` as the declared result type; BadReply naming the field otherwise."""
    try:
        return msgspec.convert({} if data is None and kind is Done else data, type=kind)
    except msgspec.ValidationError as exc:
        raise BadReply(f"malformed reply to '{cmd}': {exc}") from None
