"""C2, C3: BYOC is decided by a job's content, at the sites and at the server.

A federation whose server and site-a run no custom code (``enable_byoc`` false) and whose
site-b does. Replayed as the review did: a job whose only code is ``custom/train.txt``, run
by ``ScriptExecutor(launch="subprocess")``, and a job whose server workflow is a class of its
own. Each script or module writes a marker file when it runs: the marker is the proof.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.e2e.conftest import read, wait_for
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.conftest import PROJECT_ADMIN, SITE_A, SITE_B, start_federation

pytestmark = [pytest.mark.timeout(300)]

LEAD = "lead@org-a.org"
PARTICIPANTS = f"""\
  - {{name: {SITE_A}, type: client, org: org-a}}
  - {{name: {SITE_B}, type: client, org: org-b, enable_byoc: true}}
  - {{name: {LEAD}, type: admin, org: org-a, role: lead}}
  - {{name: {PROJECT_ADMIN}, type: admin, org: central, role: project_admin}}"""

# Not a .py file: the old site check looked only for custom/**/*.py.
TRAIN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    import fedra
    import fedra.client as flare

    flare.init()
    # In the job's own folder (its working directory): the job user may write there.
    Path(f"{flare.get_site_name()}.ran").write_text("the job's script ran here")
    while flare.is_running():
        model = flare.receive()
        flare.send(fedra.FLModel(params={"w": np.ones(2)}, meta={"num_samples": 1}))
    """
)


@pytest.fixture(scope="module")
def fed() -> Iterator[ProvisionedFederation]:
    """server1 and site-a without BYOC, site-b with it. The kits live outside pytest's temp
    root, which other pytest sessions close (chmod 700) while job processes (their own user,
    as root) use folders below it."""
    root = Path(tempfile.mkdtemp(prefix="fedra-byoc-"))
    try:
        federation = start_federation(root, PARTICIPANTS, server_byoc=False)
        try:
            yield federation
        finally:
            federation.stop_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)


def _text_script_job(folder: Path, site: str) -> Path:
    """A built-in server app, and for ``site`` an app whose only code is custom/train.txt."""
    meta = {
        "name": "text-script",
        "deploy_map": {"server_app": ["server"], "site_app": [site]},
        "min_clients": 1,
    }
    flow = {"class": "FedAvg", "args": {"num_rounds": 1, "min_clients": 1}}
    executor = {
        "tasks": ["*"],
        "class": "ScriptExecutor",
        "args": {"script": "train.txt", "launch": "subprocess"},
    }
    _write(folder / "meta.json", meta)
    _write(
        folder / "server_app" / "config" / "config_fed_server.json",
        {"format_version": 1, "workflows": [flow]},
    )
    _write(
        folder / "site_app" / "config" / "config_fed_client.json",
        {"format_version": 1, "executors": [executor]},
    )
    _write(folder / "site_app" / "custom" / "train.txt", TRAIN)
    return folder


def test_the_text_script_runs_where_byoc_is_on(fed: ProvisionedFederation, tmp_path: Path) -> None:
    """The control: the same job on site-b (BYOC on) runs the script, which leaves its marker."""
    with fed.session(LEAD) as lead:
        job_id = lead.submit_job(_text_script_job(tmp_path / "job", SITE_B))
        final = lead.wait(job_id, timeout=120)
    assert final.status == "FINISHED:COMPLETED", final
    assert (fed.kits[SITE_B] / "jobs" / job_id / f"{SITE_B}.ran").is_file()


def test_a_site_without_byoc_refuses_a_text_script(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    with fed.session(LEAD) as lead:
        job_id = lead.submit_job(_text_script_job(tmp_path / "job", SITE_A))
        final = lead.wait(job_id, timeout=120)
    assert final.status == "FINISHED:EXECUTION_EXCEPTION", final
    ran = fed.kits[SITE_A] / "jobs" / job_id / f"{SITE_A}.ran"
    assert not ran.exists(), "site-a ran custom/train.txt without BYOC"
    assert not (fed.kits[SITE_A] / "jobs" / job_id / "log.txt").exists()  # no job process
    site_a_log = read(fed.kits[SITE_A] / "log.txt")
    refusal = next(line for line in site_a_log.splitlines() if f"refuses job {job_id}" in line)
    assert f"job submitted by {LEAD} (lead, org-a) brings its own code" in refusal
    assert "site_app/custom/train.txt: a file in custom/" in refusal
    assert "local/authorization.json.default: byoc" in refusal
    # The submitter sees why.
    assert f"{SITE_A} refuses job {job_id}" in json.dumps(msgspec.to_builtins(final))
    fed.check_alive()


def _custom_server_job(folder: Path) -> Path:
    """One app for all: its server workflow is a class of the job's own."""
    # Importing it leaves a file in the server job's working directory (its workspace).
    module = "from pathlib import Path\nPath('imported').write_text('x')\n"
    module += "class Flow:\n    pass\n"
    meta = {"name": "custom-server", "deploy_map": {"app": ["@ALL"]}, "min_clients": 1}
    _write(folder / "meta.json", meta)
    _write(
        folder / "app" / "config" / "config_fed_server.json",
        {"format_version": 1, "workflows": [{"custom": "flow.Flow"}]},
    )
    _write(
        folder / "app" / "config" / "config_fed_client.json",
        {"format_version": 1, "executors": [{"tasks": ["*"], "custom": "flow.Flow"}]},
    )
    _write(folder / "app" / "custom" / "flow.py", module)
    return folder


def test_the_server_without_byoc_refuses_custom_server_code(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    job = _custom_server_job(tmp_path / "job")
    with fed.session(LEAD) as lead:
        job_id = lead.submit_job(job)
        final = lead.wait(job_id, timeout=120)
    assert final.status == "FAILED_TO_RUN", final
    workspace = fed.kits[SERVER] / "store" / "jobs" / job_id / "workspace"
    assert not (workspace / "imported").exists(), "the server imported the job's own class"
    reason = json.dumps(msgspec.to_builtins(final))
    assert f"{SERVER} refuses job {job_id}" in reason, final
    assert "flow.Flow" in reason and f"{LEAD} (lead, org-a)" in reason, final

    def logged() -> bool:
        return f"{SERVER} refuses job {job_id}" in read(fed.kits[SERVER] / "log.txt")

    wait_for(logged, 10, "the server to log the refusal")
    line = next(
        line
        for line in read(fed.kits[SERVER] / "log.txt").splitlines()
        if f"refuses job {job_id}" in line
    )
    assert "may not run custom code on server1" in line
    assert "local/authorization.json.default: byoc" in line
    fed.check_alive()
