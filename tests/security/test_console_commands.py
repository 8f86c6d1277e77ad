"""The console commands FLARE 2.1 users type by habit (info, pwd, ls, head, grep, env,
report_resources, reset_errors, set_timeout) and the ``fedra system`` CLI twins, against one
provisioned federation of real processes over mTLS: each answers, stays inside the
participant's workspace, and is refused (and logged) for a role without the right.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedra.admin import AdminError
from fedra.cli import main
from tests.e2e.jobs import arithmetic_job
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.authz_support import assert_all_up, wait_log
from tests.security.conftest import LEAD_A, LEAD_B, MEMBER_A, PROJECT_ADMIN, SITE_A, SITE_B

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def job_a(hostile: ProvisionedFederation, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job of lead@org-a.org that ran on site-a and site-b and ended (how it ended does not
    matter to these commands)."""
    folder = tmp_path_factory.mktemp("job-a")
    job = arithmetic_job(folder / "job", folder / "marks", rounds=1)
    with hostile.session(LEAD_A) as lead:
        job_id = lead.submit_job(job)
        assert lead.wait(job_id, timeout=120).status.is_final
    return job_id


@pytest.fixture
def _wide(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COLUMNS", "200")
    yield


def test_the_commands_answer_on_the_server_and_on_a_site(
    hostile: ProvisionedFederation, job_a: str
) -> None:
    with hostile.session(MEMBER_A) as member:
        info = member.info()
        assert (info.server, info.hot, info.admin.name) == (SERVER, SERVER, MEMBER_A)
        assert info.project == "security" and info.scopes["manage_job"] == "none"
        assert member.pwd(SITE_B).root == str(hostile.kits[SITE_B].resolve())
        env = member.env(SITE_A)
        assert env.name == SITE_A and env.fedra == info.version and env.python
        workspace = {e.name for e in member.ls(SITE_B).entries}
        assert {"log.txt", job_a} <= workspace and "startup" not in workspace
        inside = {e.name for e in member.ls("server", job_a, recursive=True).entries}
        assert {"job", "job/meta.json"} <= inside
        assert member.head(SITE_A, "log.txt", 1)
        found = member.grep("server", "connected", "log.txt", ignore_case=True)
        assert found and all(line.split(":", 1)[0].isdigit() for line in found.splitlines())
        report = member.report_resources()
        assert {s.name for s in report.sites} == {SITE_A, SITE_B}
        assert member.set_timeout(30).seconds == 30.0 and member.reply_timeout == 30.0


@pytest.mark.parametrize(
    ("participant", "path"),
    [("server", "../server1"), (SITE_B, "startup"), (SITE_B, "/etc"), ("server", "store")],
)
def test_ls_never_leaves_the_workspace(
    hostile: ProvisionedFederation, participant: str, path: str
) -> None:
    with hostile.session(PROJECT_ADMIN) as admin, pytest.raises(AdminError) as refused:
        admin.ls(participant, path)
    assert "refused" in str(refused.value) or "not listable" in str(refused.value)
    wait_log(hostile, SERVER, "refused ls from", PROJECT_ADMIN)


def test_reset_errors_and_file_reads_follow_the_rights(
    hostile: ProvisionedFederation, job_a: str
) -> None:
    with hostile.session(MEMBER_A) as member:
        with pytest.raises(AdminError, match=r"not allowed: member .* reset_errors.*manage_job"):
            member.reset_errors(job_a)
        with pytest.raises(AdminError, match=r"not allowed.*download_job"):
            member.grep(SITE_B, "min_clients", f"{job_a}/job/meta.json")
    wait_log(hostile, SERVER, "refused reset_errors from", MEMBER_A, "manage_job: none")
    with hostile.session(LEAD_B) as lead_b, pytest.raises(AdminError, match="manage_job: own"):
        lead_b.reset_errors(job_a)
    with hostile.session(LEAD_A) as lead_a:
        assert "min_clients" in lead_a.grep(SITE_B, "min_clients", f"{job_a}/job/meta.json")
        assert lead_a.reset_errors(job_a).job_id == job_a
        after = lead_a.show_errors(job_a)
        assert after.reset_at is not None and after.errors == [] and after.failure is None
    assert_all_up(hostile)


def test_the_cli_twins_run_the_same_commands(
    hostile: ProvisionedFederation, job_a: str, capsys: pytest.CaptureFixture[str], _wide: None
) -> None:
    kit = ["--kit", str(hostile.kits[MEMBER_A])]

    def cli(*argv: str) -> tuple[int, str, str]:
        try:
            code = main([*argv, *kit])
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = cli("system", "status")
    assert code == 0 and "Engine status: started" in out, err
    code, out, err = cli("system", "tail", SITE_B, "-n", "2")
    assert code == 0 and len(out.splitlines()) == 2, err
    code, out, _ = cli("system", "ls", "server", job_a)
    assert code == 0 and " job/" in out
    code, _, err = cli("system", "restart", "client", SITE_B)  # a member may not operate
    assert code != 0 and "not allowed" in err
    code, _, err = cli("job", "reset-errors", job_a)
    assert code != 0 and "manage_job" in err
    assert_all_up(hostile)
