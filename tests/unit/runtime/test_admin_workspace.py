"""info, pwd, ls, head, grep, env, report_resources and reset_errors through the admin
service over an in-memory AdminHost: typed replies, confinement, filtering by the view scope,
and every refusal before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fedra.core import JobStatus
from fedra.core.admin_results import (
    EnvInfo,
    ErrorsReset,
    FileText,
    JobErrors,
    Listing,
    ResourceReport,
    ServerInfo,
    Workspace,
    decode_result,
)
from fedra.jobstore import MemoryJobStore
from fedra.runtime.admin_host import SiteView
from fedra.scheduler import SiteResources
from tests.unit.runtime.test_admin_service import (
    ADMIN,
    META,
    FakeHost,
    Peer,
    call,
    ok_data,
    refused,
)

LEAD_B = Peer("lead@org-b.org", "org-b", "lead")
MEMBER_B = Peer("member@org-b.org", "org-b", "member")
ORG_ADMIN_B = Peer("boss@org-b.org", "org-b", "org_admin")


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    (tmp_path / "log.txt").write_text("".join(f"line {i}\n" for i in range(5)))
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "server.key").write_text("SECRET")
    fake = FakeHost(tmp_path, MemoryJobStore(tmp_path / "store"))
    fake.connected["site-a"] = SiteView(
        "site-a", "org-a", 0.0, ("j1",), SiteResources(num_gpus=2), SiteResources(num_gpus=1)
    )
    fake.connected["site-b"] = SiteView("site-b", "org-b", 0.0, ())
    return fake


def _job(host: FakeHost, owner: Peer = ADMIN) -> str:
    record = host.store.create(META, b"zip", owner.name)
    info = {"owner": {"name": owner.name, "org": owner.org, "role": owner.role}}
    host.store.update_run_info(record.job_id, info)
    return record.job_id


def _policy(host: FakeHost, role: str, **rights: str) -> None:
    """A local/authorization.json giving ``role`` these scopes (others: the defaults)."""
    from fedra.runtime.admin_rights import SERVER_DEFAULT

    roles = {r: dict(v) for r, v in SERVER_DEFAULT.items()}
    roles[role].update(rights)
    (host.root / "local").mkdir(exist_ok=True)
    (host.root / "local" / "authorization.json").write_text(json.dumps({"roles": roles}))


def test_info_names_the_project_server_version_admin_and_scopes(host: FakeHost) -> None:
    info = decode_result("info", ok_data(call(host, "info", peer=MEMBER_B)), ServerInfo)
    assert (info.project, info.server, info.hot, info.ha) == ("demo", "server", "server", False)
    assert (info.admin.name, info.admin.role) == ("member@org-b.org", "member")
    assert info.scopes["view"] == "any" and info.scopes["manage_job"] == "none"
    assert info.version


def test_pwd_and_env_of_the_server_and_a_site(host: FakeHost) -> None:
    where = decode_result("pwd", ok_data(call(host, "pwd")), Workspace)
    assert where.root == str(host.root.resolve()) and "log.txt" in where.readable
    os.environ["FEDRA_TEST_SECRET"] = "hunter2"
    try:
        reply = ok_data(call(host, "env"))
    finally:
        del os.environ["FEDRA_TEST_SECRET"]
    assert "hunter2" not in json.dumps(reply) and "FEDRA_TEST_SECRET" not in json.dumps(reply)
    env = decode_result("env", reply, EnvInfo)
    assert env.name == "server" and env.python and "msgspec" in env.packages
    host.site_answers["env"] = {
        "name": "site-a",
        "fedra": "0.1.0",
        "python": "3.11.9",
        "implementation": "CPython",
        "platform": "Linux",
        "machine": "x86_64",
    }
    relayed = decode_result("env", ok_data(call(host, "env", {"target": "site-a"})), EnvInfo)
    assert relayed.name == "site-a"
    host.site_answers["pwd"] = {"name": "site-a", "root": ["not", "text"], "readable": []}
    assert "malformed reply to 'pwd'" in refused(call(host, "pwd", {"target": "site-a"}))


def test_ls_of_the_server_lists_its_log_and_only_the_jobs_the_view_scope_reaches(
    host: FakeHost,
) -> None:
    mine, theirs = _job(host, LEAD_B), _job(host, ADMIN)
    listing = decode_result("ls", ok_data(call(host, "ls")), Listing)
    assert {e.name for e in listing.entries} == {"log.txt", mine, theirs}
    assert "startup" not in {e.name for e in listing.entries}  # the kit is not the workspace
    _policy(host, "lead", view="own_org")
    host.org = "org-b"  # the lead's org: own_org reaches the server, and org-b's jobs only
    own = decode_result("ls", ok_data(call(host, "ls", peer=LEAD_B)), Listing)
    assert {e.name for e in own.entries} == {"log.txt", mine}


def test_ls_of_a_job_folder_and_a_sites_workspace(host: FakeHost) -> None:
    job_id = _job(host)
    (host.store.workspace(job_id) / "server_job.log").write_text("hello\n")
    listing = decode_result("ls", ok_data(call(host, "ls", {"path": job_id})), Listing)
    assert [(e.name, e.kind) for e in listing.entries] == [("server_job.log", "file")]
    other = _job(host, LEAD_B)
    host.site_answers["ls"] = {
        "participant": "site-a",
        "path": "",
        "entries": [
            {"name": "log.txt", "kind": "file", "mtime": 1.0, "size": 3},
            {"name": job_id, "kind": "dir", "mtime": 1.0},
            {"name": other, "kind": "dir", "mtime": 1.0},
            {"name": "deleted-job", "kind": "dir", "mtime": 1.0},
        ],
    }
    _policy(host, "lead", view="own_org")
    site = decode_result(
        "ls", ok_data(call(host, "ls", {"participant": "site-b"}, LEAD_B)), Listing
    )
    assert [e.name for e in site.entries] == ["log.txt", other]  # neither unknown nor others'
    assert ("ask", "site-b", "ls", json.dumps({"path": "", "recursive": False})) in host.acts


@pytest.mark.parametrize("path", ["..", "../store", "/etc", "startup", "store/jobs", "j/../x"])
def test_ls_outside_the_workspace_is_refused_before_anything_is_read(
    host: FakeHost, path: str
) -> None:
    error = refused(call(host, "ls", {"participant": "site-a", "path": path}))
    assert "refused" in error or "not listable" in error
    assert host.acts == []


def test_head_and_grep_of_the_server_and_relayed(host: FakeHost) -> None:
    head = decode_result("head", ok_data(call(host, "head", _file(lines=2))), FileText)
    assert head.text.splitlines() == ["line 0", "line 1"]
    grep = ok_data(call(host, "grep", {**_file(), "pattern": "line [34]"}))
    assert decode_result("grep", grep, FileText).text.splitlines() == ["4:line 3", "5:line 4"]
    host.site_answers["grep"] = {"text": "1:x"}
    args = {"participant": "site-a", "file": "log.txt", "pattern": "x", "ignore_case": True}
    assert ok_data(call(host, "grep", args)) == {"text": "1:x"}
    assert any(a[:3] == ("ask", "site-a", "grep") for a in host.acts)
    assert "not readable" in refused(call(host, "head", _file(file="startup/server.key")))
    assert "refused" in refused(call(host, "grep", {**_file("../x"), "pattern": "S"}))


def _file(file: str = "log.txt", lines: int | None = None) -> dict[str, object]:
    args: dict[str, object] = {"participant": "server", "file": file}
    if lines is not None:
        args["lines"] = lines
    return args


def test_report_resources_lists_only_the_sites_the_view_scope_reaches(host: FakeHost) -> None:
    report = decode_result(
        "report_resources", ok_data(call(host, "report_resources")), ResourceReport
    )
    site_a = report.sites[0]
    assert [s.name for s in report.sites] == ["site-a", "site-b"]
    assert site_a.total == {"num_gpus": 2} or site_a.total == SiteResources(num_gpus=2).as_dict()
    assert site_a.free == SiteResources(num_gpus=1).as_dict() and site_a.jobs == ["j1"]
    _policy(host, "lead", view="own_org")
    own = decode_result(
        "report_resources", ok_data(call(host, "report_resources", peer=LEAD_B)), ResourceReport
    )
    assert [s.name for s in own.sites] == ["site-b"]


def test_reset_errors_hides_earlier_errors_and_keeps_the_history(host: FakeHost) -> None:
    job_id = _job(host)
    host.store.transition(job_id, JobStatus.DISPATCHED, "go")
    host.store.transition(job_id, JobStatus.RUNNING, "go")
    host.store.set_failure(job_id, {"site": "site-a", "reason": "boom"})
    host.store.transition(job_id, JobStatus.FINISHED_EXECUTION_EXCEPTION, "site-a: boom")
    before = decode_result(
        "show_errors", ok_data(call(host, "show_errors", {"job_id": job_id})), JobErrors
    )
    assert before.errors == ["site-a: boom"] and before.failure is not None
    reset = decode_result(
        "reset_errors", ok_data(call(host, "reset_errors", {"job_id": job_id})), ErrorsReset
    )
    assert (reset.job_id, reset.cleared) == (job_id, 1)
    after = decode_result(
        "show_errors", ok_data(call(host, "show_errors", {"job_id": job_id})), JobErrors
    )
    assert after.errors == [] and after.failure is None and after.reset_at == reset.at
    history = host.store.get(job_id).history
    assert history[-1].reason == "site-a: boom"  # the audit trail is kept


@pytest.mark.parametrize(
    ("peer", "cmd", "args"),
    [
        (MEMBER_B, "reset_errors", {"job_id": "JOB"}),  # manage_job: none
        (LEAD_B, "reset_errors", {"job_id": "JOB"}),  # manage_job: own; the job is admin's
        (ORG_ADMIN_B, "reset_errors", {"job_id": "JOB"}),  # own_org: another org's job
        (MEMBER_B, "head", {"participant": "server", "file": "JOB/job/meta.json"}),
        (MEMBER_B, "grep", {"participant": "site-a", "pattern": "x", "file": "JOB/x.npz"}),
    ],
)
def test_each_new_command_is_refused_without_the_right_before_any_work(
    host: FakeHost, peer: Peer, cmd: str, args: dict[str, object]
) -> None:
    job_id = _job(host)
    args = {k: v.replace("JOB", job_id) if isinstance(v, str) else v for k, v in args.items()}
    before = host.store.get(job_id)
    error = refused(call(host, cmd, args, peer))
    assert error.startswith(f"not allowed: {peer.role} {peer.name} may not {cmd}")
    assert host.acts == [] and host.store.get(job_id) == before


@pytest.mark.parametrize(
    ("cmd", "args"),
    [
        ("info", {}),
        ("pwd", {"target": "site-a"}),
        ("env", {"target": "site-a"}),
        ("ls", {"participant": "site-a"}),
        ("ls", {"participant": "server", "path": "JOB"}),
        ("head", {"participant": "site-a", "file": "log.txt"}),
        ("grep", {"participant": "site-a", "pattern": "x", "file": "log.txt"}),
        ("report_resources", {}),
    ],
)
def test_without_view_every_viewing_command_is_refused_before_any_work(
    host: FakeHost, cmd: str, args: dict[str, object]
) -> None:
    job_id = _job(host)
    args = {k: v.replace("JOB", job_id) if isinstance(v, str) else v for k, v in args.items()}
    _policy(host, "member", view="none")
    assert "view: none" in refused(call(host, cmd, args, MEMBER_B))
    assert host.acts == []


def test_view_own_org_reaches_only_the_orgs_participants(host: FakeHost) -> None:
    _policy(host, "lead", view="own_org")
    for cmd, args in (
        ("pwd", {"target": "site-a"}),
        ("env", {"target": "server"}),
        ("ls", {"participant": "site-a"}),
        ("head", {"participant": "site-a", "file": "log.txt"}),
    ):
        assert "own_org" in refused(call(host, cmd, args, LEAD_B)), cmd
    assert host.acts == []
    host.site_answers["pwd"] = {"name": "site-b", "root": "/x", "readable": []}
    assert ok_data(call(host, "pwd", {"target": "site-b"}, LEAD_B))["name"] == "site-b"  # type: ignore[index]
