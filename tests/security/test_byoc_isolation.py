"""M9: job code cannot touch its participant (the parents run as root).

In a real federation (the ``hostile`` set-up, BYOC on everywhere) a job's training script
(on each site, started by the site job process) and its custom server workflow (imported by
the server job process) try what the review did: read the participant's private key and
rewrite its ``local/authorization.json``. Each writes what it could do into its own working
folder, which the test reads once the job has ended. The job itself still completes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.job import FedJob
from tests.e2e.conftest import read
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.conftest import LEAD_A, SITE_A, SITE_B, start_federation

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="job processes get a user of their own only when the parents run as root",
    ),
]


@pytest.fixture(scope="module")
def hostile() -> Iterator[ProvisionedFederation]:
    """The reviewed set-up (see conftest), its kits outside pytest's temp root: other pytest
    sessions close that root (chmod 700) while job processes, a user of their own, use it."""
    root = Path(tempfile.mkdtemp(prefix="fedra-byoc-"))
    try:
        federation = start_federation(root)
        try:
            yield federation
        finally:
            federation.stop_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)


JOB_USER = "fedra-job"  # fedra.runtime.isolation.JOB_USER

# What job code tries against its participant; the answers go to probe-<who>.json in cwd.
PROBE = textwrap.dedent(
    """
    import json, os
    from pathlib import Path

    def probe(kit, key, who):
        kit = Path(kit)
        tried = {"uid": os.getuid()}
        try:
            tried["key"] = "read " + str(len((kit / "startup" / key).read_bytes())) + " bytes"
        except OSError as exc:
            tried["key"] = type(exc).__name__
        try:
            (kit / "local" / "authorization.json").write_text('{"roles": {}}')
            tried["policy"] = "written"
        except OSError as exc:
            tried["policy"] = type(exc).__name__
        try:
            tried["kit"] = sorted(p.name for p in kit.iterdir())
        except OSError as exc:
            tried["kit"] = type(exc).__name__
        Path(f"probe-{who}.json").write_text(json.dumps(tried))
    """
)

TRAIN = textwrap.dedent(
    """
    import json, sys
    import fedra
    import fedra.client as flare
    from probe import probe

    flare.init()
    site = flare.get_site_name()
    probe(json.loads(sys.argv[1])[site], "client.key", site)  # this site's own kit
    while flare.is_running():
        model = flare.receive()
        flare.send(fedra.FLModel(params={"w": model.params["w"] + 1}, meta={"num_samples": 1}))
    """
)


def _job(folder: Path, hostile: ProvisionedFederation) -> Path:
    """A normal job whose code probes its participants' kits."""
    import numpy as np

    src = folder.parent / "src"
    src.mkdir()
    (src / "probe.py").write_text(PROBE)
    (src / "train.py").write_text(TRAIN)
    workflow = "from fedra.workflows import FedAvg\nfrom probe import probe\n"
    workflow += f"probe({str(hostile.kits[SERVER])!r}, 'server.key', 'server')\n"
    workflow += "class Probing(FedAvg):\n    pass\n"
    (src / "flow.py").write_text(workflow)
    np.savez(src / "init.npz", w=np.zeros(2))
    job = FedJob("probe", min_clients=2)
    job.add_workflow(custom="flow.Probing", num_rounds=1, min_clients=2)
    job.set_persistor(initial_npz="init.npz", key_metric="mean")
    kits = json.dumps({site: str(hostile.kits[site]) for site in (SITE_A, SITE_B)})
    job.add_executor("ScriptExecutor", script="train.py", args=[kits])
    for name in ("probe.py", "train.py", "flow.py", "init.npz"):
        job.add_file(src / name)
    job.export(folder)
    return folder


def test_job_code_cannot_read_keys_nor_change_policies(
    hostile: ProvisionedFederation, tmp_path: Path
) -> None:
    job = _job(tmp_path / "job", hostile)
    with hostile.session(LEAD_A) as lead:
        job_id = lead.submit_job(job)
        final = lead.wait(job_id, timeout=120)
    assert final.status == "FINISHED:COMPLETED", final  # a normal job still completes
    job_uid = pwd.getpwnam(JOB_USER).pw_uid
    server_ws = hostile.kits[SERVER] / "store" / "jobs" / job_id / "workspace"
    found = {"server": server_ws / "probe-server.json"}
    for site in (SITE_A, SITE_B):
        found[site] = hostile.kits[site] / "jobs" / job_id / f"probe-{site}.json"
    for who, path in found.items():
        assert path.is_file(), f"{who}'s probe did not run"
        tried = json.loads(path.read_text())
        assert tried["uid"] == job_uid, (who, tried)
        assert tried["key"] == "PermissionError", (who, tried)
        assert tried["policy"] == "PermissionError", (who, tried)
        assert tried["kit"] == "PermissionError", (who, tried)
        kit = hostile.kits[SERVER if who == "server" else who]
        assert not (kit / "local" / "authorization.json").exists()
        assert "job processes run as the unprivileged user fedra-job" in read(kit / "log.txt")
    hostile.check_alive()
