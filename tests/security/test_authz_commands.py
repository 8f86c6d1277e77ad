"""M6, M8, L1 and fail-closed dispatch, replayed against real processes over mTLS.

The server dispatches only declared commands, checks their arguments first, authorizes
exactly the arguments it acts on, and enforces every scope of every right (``view``
included). Each refusal is one line to the admin and one line in the server's log.txt.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from fedra.admin import AdminError
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.authz_support import assert_all_up, finished_job, log_lines, wait_log
from tests.security.conftest import (
    LEAD_A,
    LEAD_B,
    MEMBER_A,
    ORG_ADMIN_A,
    PROJECT_ADMIN,
    SITE_A,
    SITE_B,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def job_a(hostile: ProvisionedFederation, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finished job of lead@org-a.org."""
    return finished_job(hostile, LEAD_A, tmp_path_factory.mktemp("job-a"))


@contextlib.contextmanager
def lead_view(fed: ProvisionedFederation, scope: str) -> Iterator[None]:
    """The server's local/authorization.json with ``view: scope`` for leads, for a while."""
    local = fed.kits[SERVER] / "local"
    policy = json.loads((local / "authorization.json.default").read_text())
    policy["roles"]["lead"]["view"] = scope
    (local / "authorization.json").write_text(json.dumps(policy))
    try:
        yield
    finally:
        (local / "authorization.json").unlink()


def test_view_own_org_is_not_any(hostile: ProvisionedFederation, job_a: str) -> None:
    """M6: with ``view: own_org`` the lead of org-b sees none of org-a's job or site."""
    with lead_view(hostile, "own_org"), hostile.session(LEAD_B) as lead_b:
        for call in (
            lambda: lead_b.get_job(job_a),
            lambda: lead_b.show_stats(job_a),
            lambda: lead_b.show_errors(job_a),
            lambda: lead_b.cat("server", f"{job_a}/server_job.log"),
            lambda: lead_b.tail(SITE_A, 5, file=f"{job_a}/log.txt"),
            lambda: lead_b.tail(SITE_A, 5),
            lambda: lead_b.sys_info(SITE_A),
        ):
            with pytest.raises(AdminError, match=r"not allowed: lead lead@org-b\.org.*own_org"):
                call()
        assert job_a not in {j.job_id for j in lead_b.list_jobs()}
        assert [s.name for s in lead_b.sites_status().sites] == [SITE_B]
        assert isinstance(lead_b.tail(SITE_B, 5), str)  # its own org's site
        line = wait_log(hostile, SERVER, "refused get_job from", LEAD_B, "(lead, org-b)")
        assert "view: own_org" in line and "local/authorization.json" in line
    with lead_view(hostile, "own_org"), hostile.session(LEAD_A) as lead_a:
        assert lead_a.get_job(job_a).job_id == job_a  # the org's own job
        assert job_a in {j.job_id for j in lead_a.list_jobs()}
    with lead_view(hostile, "own"), hostile.session(LEAD_B) as lead_b:
        assert job_a not in {j.job_id for j in lead_b.list_jobs()}
        with pytest.raises(AdminError, match="view: own"):
            lead_b.get_job(job_a)


def test_remove_client_acts_on_the_site_it_authorized(hostile: ProvisionedFederation) -> None:
    """M8: lead-a's ``names: [site-a]`` no longer authorizes removing ``name: site-b``."""
    with hostile.session(LEAD_A) as lead_a:
        with pytest.raises(AdminError, match="unknown argument 'names'"):
            lead_a._call("remove_client", {"names": [SITE_A], "name": SITE_B})
        with pytest.raises(AdminError, match=r"not allowed.*remove_client on site-b \(org-b\)"):
            lead_a.remove_client(SITE_B)
    wait_log(hostile, SERVER, "refused remove_client from", LEAD_A, "unknown argument 'names'")
    assert not log_lines(hostile, SERVER, "site-b disconnected")
    assert_all_up(hostile)


def test_cloning_needs_the_submit_right_and_the_clone_is_the_cloners(
    hostile: ProvisionedFederation, job_a: str
) -> None:
    """L1: org_admin (submit_job: none) may not clone; a clone belongs to who cloned it."""
    with (
        hostile.session(ORG_ADMIN_A) as org_admin,
        pytest.raises(AdminError, match=r"not allowed: org_admin .*clone_job.*submit_job: none"),
    ):
        org_admin.clone_job(job_a)
    wait_log(hostile, SERVER, "refused clone_job from", ORG_ADMIN_A)
    with hostile.session(LEAD_B) as lead_b:
        clone = lead_b.clone_job(job_a)
        record = lead_b.get_job(clone)
        assert record.submitter == LEAD_B
        assert (record.run_info or {})["owner"]["name"] == LEAD_B
        assert (record.run_info or {})["cloned_from"] == {"job_id": job_a, "signer": LEAD_A}
        lead_b.abort_job(clone)  # manage_job: own reaches the clone
        final = lead_b.wait(clone, timeout=60)
    assert final.status in ("FINISHED:ABORTED", "FINISHED:COMPLETED")
    with hostile.session(LEAD_A) as lead_a, pytest.raises(AdminError, match="manage_job: own"):
        lead_a.delete_job(clone)  # no longer lead-a's: the clone is lead-b's


@pytest.mark.parametrize(
    ("cmd", "args", "error"),
    [
        ("eval", {}, "unknown command 'eval'"),
        ("list_sp", {}, "unknown command 'list_sp'"),
        ("get_job", {"job_id": 5}, "job_id: expected a non-empty string"),
        ("get_job", {"job_id": "x", "extra": 1}, "unknown argument 'extra'"),
        ("list_jobs", {"detailed": "yes"}, "detailed: expected true or false"),
        ("shutdown", {"target": "client", "names": "site-b"}, "names: expected a list"),
        ("tail", {"participant": "server", "lines": 10**12}, "lines: expected 1..10000"),
    ],
)
def test_undeclared_commands_and_bad_args_are_refused_and_logged(
    hostile: ProvisionedFederation, cmd: str, args: dict[str, object], error: str
) -> None:
    with hostile.session(MEMBER_A) as member, pytest.raises(AdminError) as refused:
        member._call(cmd, args)
    assert error in str(refused.value)
    wait_log(hostile, SERVER, f"refused {cmd} from {MEMBER_A} (member, org-a)", error)
    hostile.check_alive()


def test_a_command_name_with_control_characters_is_one_log_line(
    hostile: ProvisionedFederation,
) -> None:
    """A forged line break in a command name does not forge a log line."""
    with hostile.session(PROJECT_ADMIN) as admin, pytest.raises(AdminError, match="unknown"):
        admin._call("x\nFORGED line", {})
    wait_log(hostile, SERVER, "refused x\\nFORGED line from", PROJECT_ADMIN)
    assert all("refused x" in line for line in log_lines(hostile, SERVER, "FORGED line"))
