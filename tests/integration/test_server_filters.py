"""Server-side result filters and central DP in the simulator, with poisoned sites.

site-2 sends NaN, site-3 an update a million times too big, site-1 and site-4 add 1 to every
weight. Every site reports the same number of samples, so FedAvg's mean is a plain mean.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fedra
from fedra.core import JobStatus
from fedra.filters import gaussian_epsilon
from fedra.job import FedJob
from fedra.serverapp import load_npz
from fedra.simulator import RunSummary

ROUNDS = 3
CLIP = 2.0

POISONED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import fedra
    import fedra.client as flare

    flare.init()
    steps = {"site-2": np.nan, "site-3": 1e6}
    while flare.is_running():
        model = flare.receive()
        w = model.params["w"]
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"w_mean": float(np.mean(w))}))
            continue
        step = steps.get(flare.get_site_name(), 1.0)
        flare.send(fedra.FLModel(params={"w": w + step}))
    """
)


def _job(tmp_path: Path, **fedavg: object) -> FedJob:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(POISONED_SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(2))
    job = FedJob("poisoned", min_clients=3)
    job.add_workflow("FedAvg", num_rounds=ROUNDS, min_clients=3, **fedavg)
    job.set_persistor(initial_npz="init.npz", key_metric="w_mean")
    job.add_executor("ScriptExecutor", script="train.py")
    job.add_file(src / "train.py").add_file(src / "init.npz")
    return job


def _run(job: FedJob, ws: Path) -> tuple[RunSummary, np.ndarray]:
    summary = fedra.simulate(job, n_clients=4, threads=2, workspace=ws, show_progress=False)
    return summary, load_npz(ws / "models" / "final.npz")["w"]


#: Per round: site-1 and site-4 move each weight by 1 (norm sqrt 2 < CLIP, kept as is); site-3's
#: update (1e6, 1e6) is clipped to norm CLIP, i.e. CLIP / sqrt 2 per weight; site-2 is dropped.
PER_ROUND = (1.0 + 1.0 + CLIP / math.sqrt(2)) / 3


def test_server_filters_drop_nan_and_clip_the_huge_update(tmp_path: Path) -> None:
    job = _job(tmp_path)
    job.add_server_filter("RejectNonFinite").add_server_filter("ClipNorm", max_norm=CLIP)
    summary, final = _run(job, tmp_path / "ws")
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    np.testing.assert_allclose(final, np.full(2, ROUNDS * PER_ROUND), rtol=1e-12)
    log = (tmp_path / "ws" / "log.txt").read_text()
    rejected = [line for line in log.splitlines() if "rejected the result of site" in line]
    assert len(rejected) == ROUNDS
    assert all("site-2" in line and "non-finite" in line for line in rejected)
    # Validation results (metrics only) went through the same filters untouched.
    assert summary.final_metrics["w_mean"] == pytest.approx(ROUNDS * PER_ROUND)


def test_without_server_filters_the_nan_reaches_the_global_model(tmp_path: Path) -> None:
    summary, final = _run(_job(tmp_path), tmp_path / "ws")
    # The configured behaviour: nothing on the server checks results, so FedAvg averages the
    # NaN in and the run completes with a NaN model.
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    assert np.isnan(final).all()


def test_too_few_results_after_rejections_fail_the_round(tmp_path: Path) -> None:
    job = _job(tmp_path)
    job.workflows[0]["args"]["min_clients"] = 4
    job.add_server_filter("RejectNonFinite")
    summary = fedra.simulate(
        job, n_clients=4, threads=2, workspace=tmp_path / "ws", show_progress=False
    )
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert "round 1: 3 results arrived, min_clients is 4" in (summary.error or "")


def test_central_dp_clips_like_the_filter_and_reports_epsilon(tmp_path: Path) -> None:
    # No noise: dp_gaussian's clipped equal-weight mean is exactly the ClipNorm result above.
    job = _job(
        tmp_path,
        aggregator="dp_gaussian",
        aggregator_args={"clip_norm": CLIP, "noise_multiplier": 0.0},
    )
    job.add_server_filter("RejectNonFinite")
    summary, final = _run(job, tmp_path / "a")
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    np.testing.assert_allclose(final, np.full(2, ROUNDS * PER_ROUND), rtol=1e-12)

    sigma, delta = 0.8, 1e-4
    args = {"clip_norm": CLIP, "noise_multiplier": sigma, "delta": delta, "seed": 3}
    noisy = _job(tmp_path, aggregator="dp_gaussian", aggregator_args=args)
    noisy.add_server_filter("RejectNonFinite")
    summary, final = _run(noisy, tmp_path / "b")
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    assert np.isfinite(final).all() and not np.allclose(final, ROUNDS * PER_ROUND)
    written = json.loads((tmp_path / "b" / "summary.json").read_text())
    reported = [r["metrics"]["dp_epsilon"] for r in written["rounds"] if r["workflow"] == "FedAvg"]
    assert reported == pytest.approx([gaussian_epsilon(sigma, r, delta) for r in (1, 2, 3)])
    # The noise on each round's mean has std sigma * CLIP / 3; three rounds, two weights.
    noise = final - ROUNDS * PER_ROUND
    assert np.all(np.abs(noise) < 6 * sigma * CLIP / 3 * math.sqrt(ROUNDS))
