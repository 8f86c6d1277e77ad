"""The server's result filters on a real federation (server job process, gRPC, mTLS)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from fedra.job import FedJob
from fedra.serverapp import load_npz
from tests.e2e.conftest import Federation

pytestmark = pytest.mark.timeout(240)

# site-1 adds 1 to every weight; site-2 too, except NaN in round 2 and +1000 in round 3.
SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import fedra
    import fedra.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        w = model.params["w"]
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"mean": float(np.mean(w))}))
            continue
        step = 1.0
        if flare.get_site_name() == "site-2":
            step = {2: np.nan, 3: 1000.0}.get(model.current_round, 1.0)
        flare.send(fedra.FLModel(params={"w": w + step}))
    """
)


def _job(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(4))
    job = FedJob("server-filters", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=3, min_clients=1, wait_time_after_min_received=30.0)
    job.set_persistor(initial_npz="init.npz", key_metric="mean")
    job.add_executor("ScriptExecutor", script="train.py")
    job.add_file(src / "train.py").add_file(src / "init.npz")
    job.add_server_filter("RejectNonFinite").add_server_filter("ClipNorm", max_norm=1.0)
    job.export(tmp_path / "job")
    return tmp_path / "job"


def test_server_drops_nan_and_clips_on_real_processes(
    federation: Federation, tmp_path: Path
) -> None:
    with federation.session() as session:
        job_id = session.submit_job(_job(tmp_path))
        final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:COMPLETED", final
        out = session.download_job(job_id, tmp_path / "download")
    # Every update (+1 on 4 weights: norm 2) is clipped to norm 1, i.e. +0.5 per weight;
    # site-2's NaN (round 2) is dropped and its +1000 (round 3) clipped the same way.
    weights = load_npz(out / "models" / "final.npz")["w"]
    np.testing.assert_allclose(weights, np.full(4, 1.5), rtol=1e-12)
