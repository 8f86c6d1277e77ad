"""Admin commands by role: the pure decision of fedra.runtime.admin_rights."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fedra.runtime.admin_rights import SERVER_DEFAULT, NotAllowed, check


@dataclass
class Peer:
    name: str
    org: str
    role: str


LEAD_A = Peer("lead@a.org", "a", "lead")
MEMBER_A = Peer("member@a.org", "a", "member")
ORG_ADMIN_A = Peer("boss@a.org", "a", "org_admin")
PROJECT = Peer("root@p.org", "p", "project_admin")
JOB_OF_LEAD_A = {"name": "lead@a.org", "org": "a"}
JOB_OF_LEAD_B = {"name": "lead@b.org", "org": "b"}


def allowed(peer: Peer, cmd: str, **kwargs: object) -> bool:
    try:
        check(SERVER_DEFAULT, "test", peer, cmd, **kwargs)  # type: ignore[arg-type]
    except NotAllowed:
        return False
    return True


@pytest.mark.parametrize(
    ("peer", "cmd", "owner", "expected"),
    [
        (MEMBER_A, "abort_job", JOB_OF_LEAD_A, False),
        (LEAD_A, "abort_job", JOB_OF_LEAD_A, True),
        (LEAD_A, "abort_job", JOB_OF_LEAD_B, False),
        (ORG_ADMIN_A, "abort_job", JOB_OF_LEAD_A, True),
        (ORG_ADMIN_A, "download_job", JOB_OF_LEAD_B, False),
        (PROJECT, "delete_job", JOB_OF_LEAD_B, True),
    ],
)
def test_job_commands_follow_ownership(
    peer: Peer, cmd: str, owner: dict[str, str], expected: bool
) -> None:
    assert allowed(peer, cmd, owner=owner) is expected


def test_submit_view_and_operate() -> None:
    assert allowed(LEAD_A, "submit_job")
    assert not allowed(MEMBER_A, "submit_job")
    assert not allowed(ORG_ADMIN_A, "submit_job")
    assert allowed(MEMBER_A, "list_jobs")
    assert allowed(LEAD_A, "restart", site_orgs=["a", "a"])
    assert not allowed(LEAD_A, "restart", site_orgs=["a", "b"])
    assert not allowed(MEMBER_A, "shutdown", site_orgs=["a"])
    assert allowed(PROJECT, "shutdown", site_orgs=["a", "b"])


def test_the_refusal_is_one_line_naming_role_and_command() -> None:
    with pytest.raises(NotAllowed) as err:
        check(
            SERVER_DEFAULT, "local/authorization.json", MEMBER_A, "abort_job", owner=JOB_OF_LEAD_A
        )
    message = str(err.value)
    assert message.startswith("not allowed: member member@a.org may not abort_job")
    assert "manage_job: none" in message and "\n" not in message


def test_unknown_roles_get_nothing_but_are_refused_cleanly() -> None:
    assert not allowed(Peer("x@y.z", "y", "stranger"), "list_jobs")
