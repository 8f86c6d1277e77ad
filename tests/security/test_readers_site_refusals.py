"""L7 and L5 against real processes.

L7: a job whose server workflow sends no task, refused by every site, ended
FINISHED:COMPLETED and the refusals were hidden. Now each refusal is recorded in the job
(``run_info["site_refusals"]`` and its failure, shown by get_job and show_errors), and a job
that fewer than min_clients sites ran ends FINISHED:EXECUTION_EXCEPTION.

Honest big results (above the 1 MiB upload threshold: asked for, granted, checked at the
receive gate against their task) still make a job that completes with the right model.

L5: a job whose meta.json nests arrays 100,000 deep, uploaded past the admin client's own
check, got "internal error: maximum recursion depth exceeded"; now a one-line error names
the file, and the server goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedra.admin import AdminError
from fedra.job import FedJob, zip_job
from fedra.pki import sign_job
from tests.e2e.conftest import read
from tests.e2e.jobs import arithmetic_job, expected_weights
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.conftest import LEAD_A, PROJECT_ADMIN, SITE_A, SITE_B, start_federation

NO_TASKS = '''
from fedra.workflows import FedAvg


class NoTasks(FedAvg):
    """A workflow that sends no task at all."""

    def run(self, ctx):
        return None
'''

#: Both sites refuse every job of a project admin (leads may submit).
REFUSE_PROJECT_ADMINS = {
    "roles": {
        "project_admin": {"submit_job": "none", "byoc": "none"},
        "lead": {"submit_job": "any", "byoc": "any"},
    }
}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """A federation whose sites refuse the project admin's jobs (their local policy)."""
    federation = start_federation(tmp_path_factory.mktemp("refusals"))
    try:
        # Read by each site when a job comes (no restart needed).
        for site in (SITE_A, SITE_B):
            policy = federation.kits[site] / "local" / "authorization.json"
            policy.write_text(json.dumps(REFUSE_PROJECT_ADMINS))
        yield federation
    finally:
        federation.stop_all()


def no_task_job(folder: Path) -> Path:
    src = folder.parent / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "notasks.py").write_text(NO_TASKS)
    (src / "train.py").write_text("pass\n")
    job = FedJob(folder.name, min_clients=1)
    job.add_workflow(custom="notasks.NoTasks")
    job.add_executor("ScriptExecutor", script="train.py")
    job.add_file(src / "notasks.py").add_file(src / "train.py")
    job.export(folder)
    return folder


def test_a_job_every_site_refused_does_not_complete(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    with fed.session(PROJECT_ADMIN) as admin:
        job_id = admin.submit_job(no_task_job(tmp_path / "no-tasks"))
        final = admin.wait(job_id, timeout=90)
        errors = admin.show_errors(job_id)
    assert final.status == "FINISHED:EXECUTION_EXCEPTION", final
    reason = (final.history or [])[-1].reason
    assert reason.startswith("2 of 2 sites refused or failed the job (0 ran it, min_clients=1)")
    refusals = (final.run_info or {})["site_refusals"]
    assert sorted(refusals) == [SITE_A, SITE_B]
    assert f"{SITE_B} refuses job {job_id}" in refusals[SITE_B]
    assert "may not submit jobs to this site" in refusals[SITE_A]
    assert (errors.failure or {})["site"] in (SITE_A, SITE_B)
    assert errors.errors == [reason]
    fed.check_alive()


def test_deeply_nested_job_json_is_a_clean_error(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    folder = no_task_job(tmp_path / "deep")
    meta = json.loads((folder / "meta.json").read_text())
    text = json.dumps(meta)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (folder / "meta.json").write_text(text)
    archive = zip_job(folder)
    with fed.session(PROJECT_ADMIN) as admin:
        _ca, cert, key = admin.kit.credentials()  # type: ignore[union-attr]
        args = {"signature": sign_job(archive, key), "certificate": cert.decode()}
        with pytest.raises(AdminError) as refused:
            admin._call("submit_job", args, zip=archive)  # past the client's own check
        assert "meta.json" in str(refused.value) and "nested at most 64 levels" in str(
            refused.value
        )
        assert "recursion" not in str(refused.value)
        assert admin.server_status().status == "started"
    assert "maximum recursion depth" not in read(fed.kits[SERVER] / "log.txt")
    fed.check_alive()


def test_honest_big_results_pass_the_checks(fed: ProvisionedFederation, tmp_path: Path) -> None:
    job = arithmetic_job(tmp_path / "big", tmp_path / "marks", rounds=2, wait_after_min=60.0)
    np.savez(job / "app" / "custom" / "init.npz", w=np.zeros(1 << 19, np.float32))  # 2 MiB
    with fed.session(LEAD_A) as lead:
        job_id = lead.submit_job(job)
        final = lead.wait(job_id, timeout=90)
        assert final.status == "FINISHED:COMPLETED", final
        folder = lead.download_job(job_id, tmp_path / "download")
    with np.load(folder / "models" / "final.npz") as data:
        assert data["w"].shape == (1 << 19,)
        np.testing.assert_allclose(data["w"], expected_weights(2, 2), rtol=1e-6)
    log = read(fed.kits[SERVER] / "log.txt")
    assert "refused the result of site site-a for task" not in log
    assert "refused an upload request" not in log
