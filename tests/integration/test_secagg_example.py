"""examples/secagg-fedavg through fedra.simulate: 5 sites, one dropping out of a round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedra.core import JobStatus
from fedra.job import FedJob
from fedra.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "secagg-fedavg"
INITIAL = np.arange(9, dtype=np.float64).reshape(3, 3)
#: The weighted step of a round: sum(k^2) / sum(k) over the sites' weights k.
FIVE, FOUR = 55 / 15, 30 / 10
STEP = 8.0 / (2**23 - 1)

DROPPER = '''
from fedra.client import SecAggScriptExecutor


class DropAfterMasking(SecAggScriptExecutor):
    """Loses its connection in round ``drop_round`` right after sending its masked update."""

    def __init__(self, drop_site, drop_round, **script_args):
        super().__init__(**script_args)
        self.drop_site, self.drop_round = drop_site, drop_round

    def execute(self, task_name, data, ctx):
        if (
            ctx.site_name == self.drop_site
            and task_name == "secagg_unmask"
            and data.current_round == self.drop_round
        ):
            raise ConnectionError(f"{ctx.site_name} went offline after sending its masked update")
        return super().execute(task_name, data, ctx)
'''


def _round(workspace: Path, round_num: int) -> dict[str, object]:
    info: dict[str, object] = json.loads(
        (workspace / "models" / f"round-{round_num:03d}.json").read_text()
    )
    meta = info["meta"]
    assert isinstance(meta, dict)
    secagg: dict[str, object] = meta["secagg"]
    return secagg


def _final(workspace: Path) -> np.ndarray:
    with np.load(workspace / "models" / "final.npz", allow_pickle=False) as data:
        return np.asarray(data["weights"], dtype=np.float64)


def test_example_completes_when_a_site_drops_out_before_masking(tmp_path: Path) -> None:
    summary = simulate(EXAMPLE, n_clients=5, threads=2, workspace=tmp_path, show_progress=False)
    assert summary.status is JobStatus.FINISHED_COMPLETED, summary.error
    sites = [f"site-{i}" for i in range(1, 6)]
    second = _round(tmp_path, 2)
    assert second["survivors"] == sites[:4]
    dropped = second["dropped"]
    assert isinstance(dropped, dict) and set(dropped) == {"site-5"}
    assert "NaN" in dropped["site-5"]
    assert _round(tmp_path, 1)["survivors"] == _round(tmp_path, 3)["survivors"] == sites
    np.testing.assert_allclose(
        _final(tmp_path), INITIAL + 2 * FIVE + FOUR, atol=3 * STEP + 1e-5, rtol=0
    )
    assert summary.final_metrics["mean_weight"] == pytest.approx(4 + 2 * FIVE + FOUR, abs=1e-4)


def test_a_site_that_goes_offline_after_masking_is_still_summed(tmp_path: Path) -> None:
    dropper = tmp_path / "dropper.py"
    dropper.write_text(DROPPER)
    job = FedJob("secagg-dropout", min_clients=3)
    job.set_persistor(initial_npz="initial.npz", key_metric="mean_weight")
    job.add_workflow("SecAggFedAvg", num_rounds=3, min_clients=3, clip=8.0, bits=24)
    job.add_executor(
        custom="dropper.DropAfterMasking",
        script="train.py",
        launch="in_process",
        drop_site="site-3",
        drop_round=2,
    )
    job.add_file(EXAMPLE / "app" / "custom" / "train.py")
    job.add_file(EXAMPLE / "app" / "custom" / "initial.npz")
    job.add_file(dropper)
    workspace = tmp_path / "run"
    summary = simulate(job, n_clients=5, threads=2, workspace=workspace, show_progress=False)
    assert summary.status is JobStatus.FINISHED_COMPLETED, summary.error
    second = _round(workspace, 2)
    assert second["survivors"] == [f"site-{i}" for i in range(1, 6)]
    dropped = second["dropped"]
    assert isinstance(dropped, dict) and set(dropped) == {"site-3"}
    assert "went offline after sending its masked update" in dropped["site-3"]
    np.testing.assert_allclose(_final(workspace), INITIAL + 3 * FIVE, atol=3 * STEP + 1e-5, rtol=0)
