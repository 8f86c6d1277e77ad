"""Admin commands by role: the pure decisions of fedra.runtime.admin_rights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from fedra.core.admin_spec import ADMIN_COMMAND, validate_args
from fedra.runtime.admin_rights import (
    SERVER_DEFAULT,
    Access,
    NotAllowed,
    Owner,
    authorize,
    operated_sites,
    owner_of,
)
from fedra.runtime.confined import FileRefused


@dataclass
class Peer:
    name: str
    org: str
    role: str


@dataclass
class FakeObjects:
    jobs: dict[str, Owner] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    server_org: str = "p"

    def job_owner(self, job_id: str) -> Owner:
        return self.jobs[job_id]

    def site_org(self, name: str) -> str | None:
        return self.sites.get(name)

    def site_names(self) -> list[str]:
        return sorted(self.sites)


LEAD_A = Peer("lead@a.org", "a", "lead")
LEAD_B = Peer("lead@b.org", "b", "lead")
MEMBER_A = Peer("member@a.org", "a", "member")
ORG_ADMIN_A = Peer("boss@a.org", "a", "org_admin")
PROJECT = Peer("root@p.org", "p", "project_admin")
OBJECTS = FakeObjects(
    jobs={"job-a": Owner("lead@a.org", "a"), "job-b": Owner("lead@b.org", "b")},
    sites={"site-a": "a", "site-b": "b"},
)
OWN_ORG_VIEW = {role: {**rights, "view": "own_org"} for role, rights in SERVER_DEFAULT.items()}


def allowed(
    peer: Peer, cmd: str, args: dict[str, Any] | None = None, policy: Any = SERVER_DEFAULT
) -> bool:
    command = ADMIN_COMMAND[cmd]
    try:
        authorize(Access(peer, policy, "test"), command, validate_args(command, args), OBJECTS)
    except NotAllowed:
        return False
    return True


@pytest.mark.parametrize(
    ("peer", "cmd", "job", "expected"),
    [
        (MEMBER_A, "abort_job", "job-a", False),
        (LEAD_A, "abort_job", "job-a", True),
        (LEAD_A, "abort_job", "job-b", False),
        (ORG_ADMIN_A, "abort_job", "job-a", True),
        (ORG_ADMIN_A, "download_job", "job-b", False),
        (PROJECT, "delete_job", "job-b", True),
        (MEMBER_A, "get_job", "job-b", True),  # view: any by default
    ],
)
def test_job_commands_follow_ownership(peer: Peer, cmd: str, job: str, expected: bool) -> None:
    assert allowed(peer, cmd, {"job_id": job}) is expected


def test_submit_view_and_operate() -> None:
    assert allowed(LEAD_A, "submit_job")
    assert not allowed(MEMBER_A, "submit_job")
    assert not allowed(ORG_ADMIN_A, "submit_job")
    assert allowed(MEMBER_A, "list_jobs")
    assert allowed(LEAD_A, "restart", {"target": "client", "names": ["site-a"]})
    assert not allowed(LEAD_A, "restart", {"target": "client", "names": ["site-a", "site-b"]})
    assert not allowed(LEAD_A, "restart", {"target": "client"})  # every site: site-b too
    assert not allowed(LEAD_A, "restart", {"target": "server"})
    assert not allowed(MEMBER_A, "shutdown", {"target": "client", "names": ["site-a"]})
    assert allowed(PROJECT, "shutdown", {"target": "all"})


def test_view_own_org_reaches_only_the_orgs_jobs_and_participants() -> None:
    """M6: view own_org no longer acts as any."""
    assert allowed(LEAD_B, "get_job", {"job_id": "job-b"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "get_job", {"job_id": "job-a"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "show_stats", {"job_id": "job-a"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "cat", {"participant": "site-a", "file": "log.txt"}, OWN_ORG_VIEW)
    assert allowed(LEAD_B, "cat", {"participant": "site-b", "file": "log.txt"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "tail", {"file": "job-a/log.txt"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "sys_info", {"target": "server"}, OWN_ORG_VIEW)
    own = {"lead": {**SERVER_DEFAULT["lead"], "view": "own"}}
    assert allowed(LEAD_A, "get_job", {"job_id": "job-a"}, own)
    assert not allowed(Peer("other@a.org", "a", "lead"), "get_job", {"job_id": "job-a"}, own)
    none = {"lead": {**SERVER_DEFAULT["lead"], "view": "none"}}
    assert not allowed(LEAD_A, "list_jobs", None, none)
    assert not allowed(LEAD_A, "check_status", None, none)


def test_remove_client_authorizes_the_site_it_removes() -> None:
    """M8: the site acted on is the one authorized (``name``; ``names`` is refused)."""
    assert not allowed(LEAD_A, "remove_client", {"name": "site-b"})
    assert allowed(LEAD_A, "remove_client", {"name": "site-a"})
    assert operated_sites("remove_client", {"name": "site-b"}, ["site-a", "site-b"]) == ["site-b"]


def test_clone_needs_the_submit_right_and_view_of_the_original() -> None:
    """L1: org_admin (submit_job: none) may not clone."""
    assert not allowed(ORG_ADMIN_A, "clone_job", {"job_id": "job-a"})
    assert allowed(LEAD_A, "clone_job", {"job_id": "job-b"})
    no_view = {"lead": {**SERVER_DEFAULT["lead"], "view": "own"}}
    assert not allowed(LEAD_A, "clone_job", {"job_id": "job-b"}, no_view)


def test_job_files_other_than_logs_need_the_download_right() -> None:
    """M5: a member who may view may read a job's logs, not its models or code."""
    assert allowed(MEMBER_A, "cat", {"participant": "server", "file": "job-a/server_job.log"})
    assert not allowed(MEMBER_A, "cat", {"participant": "server", "file": "job-a/job/meta.json"})
    assert allowed(LEAD_A, "cat", {"participant": "site-b", "file": "job-a/job/meta.json"})
    assert not allowed(LEAD_A, "cat", {"participant": "site-b", "file": "job-b/job/meta.json"})


def test_files_outside_the_allow_list_are_refused_before_any_scope() -> None:
    for name in ("startup/server.key", "local/authorization.json", "store/jobs.db", "../x"):
        with pytest.raises(FileRefused):
            allowed(PROJECT, "cat", {"participant": "server", "file": name})


def test_the_refusal_is_one_line_naming_role_and_command() -> None:
    command = ADMIN_COMMAND["abort_job"]
    access = Access(MEMBER_A, SERVER_DEFAULT, "local/authorization.json")
    with pytest.raises(NotAllowed) as err:
        authorize(access, command, {"job_id": "job-a"}, OBJECTS)
    message = str(err.value)
    assert message.startswith("not allowed: member member@a.org may not abort_job")
    assert "manage_job: none" in message and "\n" not in message


def test_unknown_roles_rights_and_scopes_get_nothing() -> None:
    assert not allowed(Peer("x@y.z", "y", "stranger"), "list_jobs")
    assert not allowed(LEAD_A, "list_jobs", None, {"lead": {"view": "everything"}})
    assert not allowed(LEAD_A, "list_jobs", None, {"lead": ["view"]})


def test_the_owner_is_who_submitted_or_cloned() -> None:
    signed = {"submission": {"name": "lead@a.org", "org": "a"}}
    assert owner_of(signed, "lead@a.org") == Owner("lead@a.org", "a")
    cloned = {**signed, "owner": {"name": "lead@b.org", "org": "b"}}
    assert owner_of(cloned, "lead@b.org") == Owner("lead@b.org", "b")
    assert owner_of({}, "someone") == Owner("someone", None)


@pytest.mark.parametrize(
    ("peer", "cmd", "args", "expected"),
    [
        (MEMBER_A, "reset_errors", {"job_id": "job-a"}, False),  # manage_job: none
        (LEAD_A, "reset_errors", {"job_id": "job-a"}, True),  # own job
        (LEAD_A, "reset_errors", {"job_id": "job-b"}, False),  # manage_job: own
        (ORG_ADMIN_A, "reset_errors", {"job_id": "job-b"}, False),  # another org's job
        (MEMBER_A, "ls", {"participant": "site-b"}, True),  # view: any by default
        (MEMBER_A, "ls", {"participant": "server", "path": "job-b/sub"}, True),
        (MEMBER_A, "head", {"participant": "server", "file": "job-b/x.log"}, True),
        (MEMBER_A, "head", {"participant": "server", "file": "job-b/model.npz"}, False),
        (MEMBER_A, "grep", {"participant": "site-a", "pattern": "x", "file": "job-b/c.py"}, False),
        (LEAD_A, "grep", {"participant": "site-b", "pattern": "x", "file": "job-a/c.py"}, True),
        (MEMBER_A, "env", {"target": "site-b"}, True),
        (MEMBER_A, "info", {}, True),
        (MEMBER_A, "report_resources", {}, True),
    ],
)
def test_the_commands_flare_users_type_by_habit_follow_the_same_rights(
    peer: Peer, cmd: str, args: dict[str, Any], expected: bool
) -> None:
    assert allowed(peer, cmd, args) is expected


def test_ls_with_view_own_org_reaches_only_the_orgs_workspaces_and_jobs() -> None:
    assert allowed(LEAD_B, "ls", {"participant": "site-b"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "ls", {"participant": "site-a"}, OWN_ORG_VIEW)
    assert not allowed(LEAD_B, "ls", {"participant": "site-b", "path": "job-a"}, OWN_ORG_VIEW)
    assert allowed(LEAD_B, "ls", {"participant": "site-a", "path": "job-b"}, OWN_ORG_VIEW)
    none = {"member": {**SERVER_DEFAULT["member"], "view": "none"}}
    for cmd, args in (("info", {}), ("report_resources", {}), ("pwd", {}), ("env", {})):
        assert not allowed(MEMBER_A, cmd, args, none), cmd
    with pytest.raises(FileRefused):
        allowed(PROJECT, "ls", {"participant": "server", "path": "../startup"})
