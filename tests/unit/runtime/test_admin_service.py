"""The admin service over an in-memory AdminHost: validate, authorize, dispatch, typed replies.

No server, no sockets: the handlers see only the AdminHost protocol, so a small fake one
drives every step a real request goes through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from fedra.core import JobStatus
from fedra.core.admin_results import (
    AbortResult,
    FileText,
    JobInfo,
    JobList,
    JobStats,
    JsonObject,
    JsonValue,
    ServerStatus,
    SitesStatus,
    SysInfo,
    decode_result,
)
from fedra.jobstore import JobStore, MemoryJobStore
from fedra.runtime.admin_host import AdminHost, SiteView
from fedra.runtime.admin_service import answer
from fedra.scheduler import SiteResources
from fedra.wire import Envelope

META: JsonObject = {"name": "hello", "deploy_map": {"app": ["@ALL"]}}


@dataclass
class Peer:
    name: str
    org: str
    role: str


@dataclass
class FakeHost:
    """An AdminHost in memory: records what the handlers asked of it."""

    root: Path
    store: JobStore
    name: str = "server"
    org: str = "org-a"
    project: str = "demo"
    ha: bool = False
    ssid: int | None = None
    max_job_bytes: int = 1 << 20
    project_sites: tuple[str, ...] | None = None
    ca_pem: bytes = b""
    started: float = 1_700_000_000.0
    hot: bool = True
    connected: dict[str, SiteView] = field(default_factory=dict)
    site_answers: dict[str, JsonValue] = field(default_factory=dict)
    running: list[str] = field(default_factory=list)
    acts: list[tuple[str, ...]] = field(default_factory=list)

    def ports(self) -> tuple[int, int]:
        return 8002, 8003

    def refusal(self) -> str | None:
        return None if self.hot else "server is not in service (no hot server yet)"

    def running_jobs(self) -> list[str]:
        return list(self.running)

    def waiting_reason(self, job_id: str) -> str | None:
        return "waiting for 2 GPUs"

    def site(self, name: str) -> SiteView | None:
        return self.connected.get(name)

    def sites(self) -> list[SiteView]:
        return [self.connected[n] for n in sorted(self.connected)]

    def wake(self) -> None:
        self.acts.append(("wake",))

    def abort(self, job_id: str, reason: str) -> JobStatus:
        self.acts.append(("abort", job_id, reason))
        self.store.transition(job_id, JobStatus.FINISHED_ABORTED, reason)
        return JobStatus.FINISHED_ABORTED

    def ask_site(self, site: str, cmd: str, args: JsonObject) -> JsonValue:
        self.acts.append(("ask", site, cmd, json.dumps(args, sort_keys=True)))
        return self.site_answers[cmd]

    def tell_site(self, site: str, cmd: str) -> None:
        self.acts.append(("tell", site, cmd))

    def drop_site(self, name: str) -> bool:
        self.acts.append(("drop", name))
        return self.connected.pop(name, None) is not None

    def stop(self, exit_code: int) -> None:
        self.acts.append(("stop", str(exit_code)))


ADMIN = Peer("admin@org-a.org", "org-a", "project_admin")
MEMBER = Peer("member@org-b.org", "org-b", "member")


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    (tmp_path / "log.txt").write_text("".join(f"line {i}\n" for i in range(5)))
    fake = FakeHost(tmp_path, MemoryJobStore(tmp_path / "store"))
    fake.connected["site-a"] = SiteView(
        "site-a", "org-a", 0.0, ("j1",), SiteResources(num_gpus=2), SiteResources(num_gpus=1)
    )
    fake.connected["site-b"] = SiteView("site-b", "org-b", 0.0, ())
    return fake


def call(host: AdminHost, cmd: object, args: object = None, peer: Peer = ADMIN) -> Envelope:
    headers = {"id": "r1", "cmd": cmd, "args": {} if args is None else args}
    reply = answer(host, Envelope("admin", headers), peer)
    assert reply.kind == "reply" and reply.headers["id"] == "r1"
    json.dumps(reply.headers, allow_nan=False)  # strict JSON on the wire
    return reply


def ok_data(reply: Envelope) -> object:
    assert reply.headers["ok"] is True, reply.headers
    return reply.headers["data"]


def refused(reply: Envelope) -> str:
    assert reply.headers["ok"] is False and reply.headers["data"] is None
    return str(reply.headers["error"])


def test_the_fake_host_satisfies_the_protocol(host: FakeHost) -> None:
    def needs_host(h: AdminHost) -> AdminHost:
        return h

    assert needs_host(host) is host  # mypy checks the structure; this checks it runs


def test_job_commands_answer_their_declared_types(host: FakeHost) -> None:
    record = host.store.create(META, b"zip", "admin@org-a.org")
    listed = decode_result("list_jobs", ok_data(call(host, "list_jobs")), JobList)
    assert [j.job_id for j in listed.jobs] == [record.job_id]
    assert listed.jobs[0].history is None and listed.jobs[0].status is JobStatus.SUBMITTED
    detailed = decode_result(
        "list_jobs", ok_data(call(host, "list_jobs", {"detailed": True})), JobList
    )
    assert detailed.jobs[0].waiting == "waiting for 2 GPUs"
    job = decode_result(
        "get_job", ok_data(call(host, "get_job", {"job_id": record.job_id})), JobInfo
    )
    assert job.history is not None and job.history[0].status is JobStatus.SUBMITTED
    aborted = ok_data(call(host, "abort_job", {"job_id": record.job_id}))
    assert decode_result("abort_job", aborted, AbortResult).status is JobStatus.FINISHED_ABORTED
    assert ("abort", record.job_id, "aborted by admin@org-a.org") in host.acts
    stats = decode_result(
        "show_stats", ok_data(call(host, "show_stats", {"job_id": record.job_id})), JobStats
    )
    assert stats.status is JobStatus.FINISHED_ABORTED and stats.rounds == []
    assert ok_data(call(host, "delete_job", {"job_id": record.job_id})) == {}
    assert host.store.list() == []


def test_status_lists_only_what_the_view_scope_reaches(host: FakeHost) -> None:
    server = msgspec.convert(ok_data(call(host, "check_status")), ServerStatus | SitesStatus)
    assert isinstance(server, ServerStatus) and server.sites == ["site-a", "site-b"]
    sites = decode_result(
        "check_status", ok_data(call(host, "check_status", {"target": "client"})), SitesStatus
    )
    assert [s.name for s in sites.sites] == ["site-a", "site-b"]
    assert sites.sites[0].resources is not None
    assert sites.sites[0].resources.total == SiteResources(num_gpus=2).as_dict()


def test_files_and_sys_info_of_the_server_and_relayed_to_a_site(host: FakeHost) -> None:
    text = ok_data(call(host, "tail", {"lines": 2}))
    assert decode_result("tail", text, FileText).text.splitlines() == ["line 3", "line 4"]
    info = decode_result("sys_info", ok_data(call(host, "sys_info")), SysInfo)
    assert (info.name, info.fed_port, info.admin_port) == ("server", 8002, 8003)
    host.site_answers["sys_info"] = {"name": "site-a", "pid": 7, "python": "3.11", "platform": "x"}
    relayed = decode_result(
        "sys_info", ok_data(call(host, "sys_info", {"target": "site-a"})), SysInfo
    )
    assert relayed.name == "site-a" and relayed.cpus is None


def test_a_malformed_site_answer_is_refused_not_relayed(host: FakeHost) -> None:
    host.site_answers["cat"] = {"text": ["not", "text"]}
    error = refused(call(host, "cat", {"participant": "site-a", "file": "log.txt"}))
    assert error.startswith("site site-a: malformed reply to 'cat'")


def test_operate_acts_on_exactly_the_authorized_targets(host: FakeHost) -> None:
    assert ok_data(call(host, "shutdown", {"target": "client", "names": ["site-b"]})) == {}
    assert ("tell", "site-b", "shutdown") in host.acts
    assert not any(a[:2] == ("tell", "site-a") for a in host.acts)
    assert ok_data(call(host, "remove_client", {"name": "site-a"})) == {}
    assert ("drop", "site-a") in host.acts
    assert "not connected" in refused(call(host, "remove_client", {"name": "site-a"}))


def test_authorization_is_checked_before_any_handler_acts(host: FakeHost) -> None:
    record = host.store.create(META, b"zip", "admin@org-a.org")
    error = refused(call(host, "abort_job", {"job_id": record.job_id}, MEMBER))
    assert error.startswith("not allowed: member member@org-b.org may not abort_job")
    assert "not allowed" in refused(call(host, "shutdown", {"target": "all"}, MEMBER))
    assert host.acts == []  # nothing aborted, told, asked or stopped
    assert host.store.get(record.job_id).status is JobStatus.SUBMITTED


@pytest.mark.parametrize(
    ("cmd", "args", "message"),
    [
        ("eval", {}, "unknown command 'eval'"),
        ("wait", {"job_id": "j"}, "unknown command 'wait'"),  # served by the console
        ("get_job", {"job_id": "../x"}, "not a job id"),
        ("tail", {"lines": 10**9}, "expected 1..10000"),
        ("list_jobs", {"detailed": "yes"}, "expected true or false"),
        ("remove_client", {"names": ["site-b"]}, "unknown argument 'names'"),
    ],
)
def test_undeclared_or_malformed_requests_are_refused_in_one_line(
    host: FakeHost, cmd: str, args: JsonObject, message: str
) -> None:
    error = refused(call(host, cmd, args))
    assert message in error and "\n" not in error
    assert host.acts == []


def test_a_cold_server_refuses_after_the_checks_and_before_the_handler(host: FakeHost) -> None:
    host.hot = False
    assert "not in service" in refused(call(host, "shutdown", {"target": "all"}))
    assert "unknown command" in refused(call(host, "eval"))
    assert host.acts == []
