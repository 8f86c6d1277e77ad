"""Fakes of what the server parent talks to (site connections, job processes, the store), for
unit tests of its shell, intake and scheduling: no sockets, processes or sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedra.core import JobStatus, JsonObject
from fedra.jobstore import MemoryJobStore
from fedra.protocol import FROM_SITE, TO_SERVER_JOB, TO_SITE, Message, decode
from fedra.runtime.routing import JobLaunched, JobRunning, SiteJoined
from fedra.runtime.server_parent import ServerParent
from fedra.runtime.server_records import RunningJob, SiteHandle
from fedra.transport import ChannelClosed, PeerIdentity, SharedBody
from fedra.wire import Envelope
from tests.unit.runtime.conftest import routing_server

META: JsonObject = {"name": "hello", "deploy_map": {"app": ["@ALL"]}}


class FakeConn:
    """A site's connection: records what is sent to it; ``fail``: every send fails."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.peer = PeerIdentity(name, f"org-{name}", "client")
        self.sent: list[Envelope] = []
        self.shared: list[SharedBody] = []
        self.closed = False
        self.fail = fail
        self.last_heard = 0.0
        #: Called with each envelope sent (a site answering at once, say).
        self.on_send: Any = None

    def send(self, env: Envelope) -> None:
        if self.fail or self.closed:
            raise ChannelClosed("the site is gone")
        self.sent.append(env)
        if self.on_send is not None:
            self.on_send(env)

    def send_shared(self, env: Envelope, shared: SharedBody) -> None:
        self.shared.append(shared)
        self.send(env)

    def drain(self, timeout: float) -> None:
        del timeout

    def close(self) -> None:
        self.closed = True

    def messages(self) -> list[Message]:
        """What the site received, decoded as a site decodes it."""
        return [decode(env, TO_SITE) for env in self.sent]


class FakeChannel:
    """A job process's channel: records what the parent sends it."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, env: Envelope) -> None:
        self.sent.append(env)

    def messages(self) -> list[Message]:
        """What the job process received, decoded as it decodes it."""
        return [decode(env, TO_SERVER_JOB) for env in self.sent]


class FakeProc:
    """Stands for a job's process (never started; it has no pid, so nothing can signal it)."""


def shell(tmp_path: Path, sites: tuple[str, ...] = ("site-a", "site-b")) -> ServerParent:
    """A server parent with a memory store and ``sites`` connected over fake connections;
    it sends through its own ``send_to_site``, ``start_on`` and ``to_job``."""
    sp = routing_server()
    sp.store = MemoryJobStore(tmp_path / "store")
    for site in sites:
        connect(sp, site)
    return sp


def connect(sp: ServerParent, site: str, fail: bool = False) -> SiteHandle:
    """Admit ``site`` over a fake connection and tell the router."""
    handle = SiteHandle(site, f"org-{site}", FakeConn(site, fail))  # type: ignore[arg-type]
    sp.sites[site] = handle
    sp.feed(SiteJoined(site))
    return handle


def conn(sp: ServerParent, site: str) -> FakeConn:
    """The fake connection of a connected site."""
    found = sp.sites[site].conn
    assert isinstance(found, FakeConn)
    return found


def submit(sp: ServerParent, job_id: str = "j1", meta: JsonObject | None = None) -> None:
    """A job in the store, SUBMITTED."""
    sp.store.create(meta or META, b"PK-zip", "admin@org-a", job_id)


def run_job(
    sp: ServerParent, job_id: str = "j1", sites: tuple[str, ...] = ("site-a", "site-b")
) -> RunningJob:
    """A job recorded RUNNING, with a fake process, launched and running in the router;
    what the sites and the process were sent so far is cleared."""
    submit(sp, job_id)
    sp.store.transition(job_id, JobStatus.DISPATCHED, "test")
    sp.store.transition(job_id, JobStatus.RUNNING, "test")
    job = RunningJob(job_id, FakeProc(), FakeChannel(), list(sites), Path("log.txt"))  # type: ignore[arg-type]
    with sp.lock:
        sp.running[job_id] = job
    sp.uploads.open_job(job_id)
    sp.feed(JobLaunched(job_id, sites))
    sp.feed(JobRunning(job_id))
    clear(sp, job)
    return job


def channel(job: RunningJob) -> FakeChannel:
    """The fake channel of a job's process."""
    assert isinstance(job.channel, FakeChannel)
    return job.channel


def clear(sp: ServerParent, *jobs: RunningJob) -> None:
    """Forget what was sent so far."""
    for handle in sp.sites.values():
        assert isinstance(handle.conn, FakeConn)
        handle.conn.sent.clear()
    for job in jobs:
        channel(job).sent.clear()


def from_site(env: Envelope) -> Message:
    """An envelope decoded as the server decodes a site's."""
    return decode(env, FROM_SITE)
