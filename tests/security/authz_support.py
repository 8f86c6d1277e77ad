"""Helpers of the authz security tests: a finished job of an admin, log lines, liveness."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import read, wait_for
from tests.e2e.jobs import arithmetic_job
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.conftest import PROJECT_ADMIN, SITE_A, SITE_B


def finished_job(fed: ProvisionedFederation, admin: str, folder: Path) -> str:
    """Submit a one-round job as ``admin`` and wait until it completes; its id."""
    job = arithmetic_job(folder / "job", folder / "marks", rounds=1)
    with fed.session(admin) as session:
        job_id = session.submit_job(job)
        final = session.wait(job_id, timeout=120)
    assert final.status == "FINISHED:COMPLETED", final
    return job_id


def log_lines(fed: ProvisionedFederation, name: str, *words: str) -> list[str]:
    """The lines of ``name``'s log.txt holding every one of ``words``."""
    text = read(fed.kits[name] / "log.txt")
    return [line for line in text.splitlines() if all(w in line for w in words)]


def wait_log(fed: ProvisionedFederation, name: str, *words: str) -> str:
    """Until ``name``'s log.txt has a line with every one of ``words``; that line."""
    wait_for(lambda: bool(log_lines(fed, name, *words)), 15, f"{words} in {name}'s log")
    return log_lines(fed, name, *words)[-1]


def assert_all_up(fed: ProvisionedFederation, sites: tuple[str, ...] = (SITE_A, SITE_B)) -> None:
    """Every process is alive, the server answers and lists every site as connected."""
    fed.check_alive()
    with fed.session(PROJECT_ADMIN) as admin:
        assert admin.server_status().status == "started"

        def listed() -> bool:
            fed.check_alive()
            return {s.name for s in admin.sites_status().sites} == set(sites)

        wait_for(listed, 30, f"{SERVER} to list {sites}")
