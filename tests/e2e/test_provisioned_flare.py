"""A FLARE 2.1 project.yml, provisioned by Fedra and started for real.

The project file is FLARE's format (``api_version: 3``, ``builders:``, ``roles: [super]``):
``fedra provision`` converts it, and the kits start a server (``localhost``, free ports) and
two sites that connect over mutual TLS; a lead's job completes and the super admin (Fedra's
``project_admin``) sees it. Every process runs in a session of its own and is ended by
process group, also when the test fails; waits poll a condition against a deadline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedra.cli import main
from tests.e2e.conftest import read, wait_for
from tests.e2e.jobs import arithmetic_job
from tests.e2e.provisioned import SERVER_MODULE, SITE_MODULE, end_group, free_ports, spawn
from tests.unit.provision.flare_samples import E2E

pytestmark = pytest.mark.timeout(300)

LEAD = "lead@hospital-a.org"
SUPER = "super@central.org"


def test_a_flare_project_provisions_kits_that_run_a_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from fedra.admin import Session

    fed_port, admin_port = free_ports()
    (tmp_path / "project.yml").write_text(E2E.format(fed_port=fed_port, admin_port=admin_port))
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["provision", "-p", "project.yml", "--python", sys.executable])
    except SystemExit as exc:  # typer ends a command that succeeded with SystemExit(0)
        code = int(exc.code or 0)
    assert code == 0
    out = capsys.readouterr().out
    assert "project.yml is a FLARE project file (api_version 3):" in out
    assert "AuthPolicyBuilder: skipped" in out
    prod = tmp_path / "workspace" / "flare-e2e" / "prod_00"
    procs = {}
    try:
        procs["localhost"] = spawn(prod / "localhost", SERVER_MODULE)

        def listening() -> bool:
            assert procs["localhost"].poll() is None, read(prod / "localhost" / "stderr.txt")
            return "listening" in read(prod / "localhost" / "log.txt")

        wait_for(listening, 60, "the server to listen")
        for site in ("site-1", "site-2"):
            procs[site] = spawn(prod / site, SITE_MODULE)

        def connected() -> bool:
            for name, proc in procs.items():
                assert proc.poll() is None, read(prod / name / "stderr.txt")
            with Session.connect(prod / LEAD, timeout=15.0) as lead:
                return sorted(s.name for s in lead.sites_status().sites) == ["site-1", "site-2"]

        wait_for(connected, 60, "both sites to connect")
        job = arithmetic_job(tmp_path / "job", tmp_path / "marks", rounds=2)
        with Session.connect(prod / LEAD, timeout=15.0) as lead:
            job_id = lead.submit_job(job)
            final = lead.wait(job_id, timeout=120)
            errors = lead.show_errors(job_id) if final.status != "FINISHED:COMPLETED" else None
        assert final.status == "FINISHED:COMPLETED", errors
        with Session.connect(prod / SUPER, timeout=15.0) as boss:
            assert boss.get_job(job_id).submitter == LEAD
    finally:
        for name in sorted(procs, key=lambda n: n == "localhost"):
            end_group(procs[name])
