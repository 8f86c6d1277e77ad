"""C1, M5, H1, L4: cat/tail/download_job read only what the admin's role grants.

Replayed as the review did, against real processes over mTLS: a member asks the server and a
site for private keys, policies and the job store; for another org's job files; sends a file
name with a NUL (which killed the site parent); plants a hard link to the server's key in a
job's workspace before downloading it. Each is refused in one line, logged by the server
(who, what, why), and every process stays up.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedra.admin import AdminError, UsageError
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.authz_support import assert_all_up, finished_job, wait_log
from tests.security.conftest import LEAD_A, LEAD_B, MEMBER_A, PROJECT_ADMIN, SITE_A, SITE_B

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def job_a(hostile: ProvisionedFederation, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finished job of lead@org-a.org (ran on site-a and site-b)."""
    return finished_job(hostile, LEAD_A, tmp_path_factory.mktemp("job-a"))


@pytest.mark.parametrize(
    "name",
    [
        "startup/server.key",
        "startup/rootCA.pem",
        "local/authorization.json.default",
        "store/jobs.db",
        "../server1/startup/server.key",
        "/etc/passwd",
    ],
)
def test_no_admin_reads_the_servers_keys_policies_or_store(
    hostile: ProvisionedFederation, name: str
) -> None:
    """C1: cat of anything but log.txt or a job's file is refused, even for project_admin."""
    secret = (hostile.kits[SERVER] / "startup" / "server.key").read_text()
    for admin in (MEMBER_A, PROJECT_ADMIN):
        with hostile.session(admin) as session, pytest.raises(AdminError) as refused:
            session.cat("server", name)
        message = str(refused.value)
        assert "refused" in message or "not readable" in message, message
        assert "\n" not in message and secret not in message
        line = wait_log(hostile, SERVER, "refused cat from", admin)
        assert "not readable" in line or "refused" in line
    assert_all_up(hostile)


def test_no_admin_reads_a_sites_keys(hostile: ProvisionedFederation) -> None:
    """C1 at a site: the member's cat of site-b's private key or policy is refused."""
    with hostile.session(MEMBER_A) as member:
        for name in ("startup/client.key", "local/authorization.json.default", "../site-a/log.txt"):
            with pytest.raises(AdminError, match=r"not readable|refused"):
                member.cat(SITE_B, name)
    wait_log(hostile, SERVER, "refused cat from", MEMBER_A, "startup/client.key")
    assert_all_up(hostile)


def test_a_malformed_file_name_kills_no_site(hostile: ProvisionedFederation) -> None:
    """H1: ``cat site-b 'x\\x00y'`` (and other junk) is one refusal; site-b stays connected."""
    proc = hostile.procs[SITE_B]
    with hostile.session(MEMBER_A) as member:
        with pytest.raises(UsageError, match="control characters"):
            member.cat(SITE_B, "x\x00y")  # the Session checks the declaration before sending
        with pytest.raises(AdminError, match="control characters"):
            member._call("cat", {"participant": SITE_B, "file": "x\x00y"})  # the server too
        with pytest.raises(AdminError, match="lines: expected an integer"):
            member._call("tail", {"participant": SITE_B, "lines": "x"})
        with pytest.raises(AdminError, match="file: expected a non-empty string"):
            member._call("cat", {"participant": SITE_B, "file": ["log.txt"]})
    line = wait_log(hostile, SERVER, "refused cat from", MEMBER_A, "control characters")
    assert "\\x00" in line  # the NUL is escaped: one clean log line
    assert proc.poll() is None
    assert_all_up(hostile)
    with hostile.session(MEMBER_A) as member:
        assert isinstance(member.tail(SITE_B, 5), str)  # and still answers


def test_job_files_follow_the_jobs_owner(hostile: ProvisionedFederation, job_a: str) -> None:
    """M5: another org's lead (download_job: own) and a member (download_job: none) may read
    the job's logs (view: any by default) but not its code or models; the owner may."""
    code = f"{job_a}/job/meta.json"
    with hostile.session(LEAD_B) as lead_b:  # the paths of the review: the store, jobs/
        for participant, path in (
            ("server", f"store/jobs/{job_a}/workspace/job/meta.json"),
            ("server", f"store/jobs/{job_a}/job.zip"),
            (SITE_B, f"jobs/{job_a}/job/meta.json"),
        ):
            with pytest.raises(AdminError, match="not readable"):
                lead_b.cat(participant, path)
    with hostile.session(LEAD_A) as lead_a:
        assert "min_clients" in lead_a.cat("server", code)
        assert "min_clients" in lead_a.cat(SITE_B, code)
    for admin in (LEAD_B, MEMBER_A):
        with hostile.session(admin) as session:
            assert isinstance(session.cat("server", f"{job_a}/server_job.log"), str)
            for participant in ("server", SITE_A, SITE_B):
                with pytest.raises(AdminError, match=r"not allowed.*download_job"):
                    session.cat(participant, code)
    wait_log(hostile, SERVER, "refused cat from", LEAD_B, "download_job")
    with hostile.session(PROJECT_ADMIN) as admin, pytest.raises(AdminError):
        admin.cat("server", "no-such-job/log.txt")
    assert_all_up(hostile)


def test_download_job_leaves_hard_links_and_symlinks_out(
    hostile: ProvisionedFederation, job_a: str, tmp_path: Path
) -> None:
    """L4: a hard link (and a symlink) to the server's key planted in the job's workspace,
    as job code could, is not in the download."""
    key = hostile.kits[SERVER] / "startup" / "server.key"
    workspace = hostile.kits[SERVER] / "store" / "jobs" / job_a / "workspace"
    assert workspace.is_dir()
    hard, soft = workspace / "leak.key", workspace / "leak-symlink.key"
    os.link(key, hard)
    soft.symlink_to(key)
    try:
        with hostile.session(LEAD_A) as lead:
            folder = lead.download_job(job_a, tmp_path)
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert "job/meta.json" in files
        assert not {"leak.key", "leak-symlink.key"} & files
        assert key.read_text() not in "".join(
            p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()
        )
        wait_log(hostile, SERVER, f"download_job {job_a}: skipped leak.key", "hard link")
    finally:
        hard.unlink()
        soft.unlink()
