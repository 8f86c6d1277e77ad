"""The PyTorch examples through the simulator: the accuracy bar and cross-site evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fedra
from fedra.core import JobStatus

pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.mark.timeout(300)
def test_hello_pt_reaches_the_accuracy_bar_in_five_rounds(examples: Path, tmp_path: Path) -> None:
    summary = fedra.simulate(
        examples / "hello-pt", n_clients=2, threads=2, workspace=tmp_path, show_progress=False
    )
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.site_traceback
    fedavg_rounds = [r for r in summary.rounds if r["workflow"] == "FedAvg"]
    assert len(fedavg_rounds) == 5
    # The final model, validated by both sites on the held-out test set.
    assert summary.final_metrics["accuracy"] >= 0.90
    best = json.loads((tmp_path / "models" / "best.json").read_text())
    assert best["metrics"]["accuracy"] >= 0.90
    for site in ("site-1", "site-2"):
        events = list((tmp_path / "tb_events" / site).glob("events.out.tfevents.*"))
        assert events, f"no TensorBoard events for {site}"


@pytest.mark.timeout(300)
def test_cross_site_eval_fills_the_matrix(examples: Path, tmp_path: Path) -> None:
    summary = fedra.simulate(
        examples / "cross-site-eval",
        n_clients=2,
        threads=2,
        workspace=tmp_path,
        show_progress=False,
    )
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.site_traceback
    result = json.loads((tmp_path / "cross_site_eval.json").read_text())
    matrix = result["matrix"]
    assert set(matrix) == {"global", "site-1", "site-2"}
    for owner, row in matrix.items():
        assert set(row) == {"site-1", "site-2"}, owner
        for metrics in row.values():
            assert 0.0 <= metrics["accuracy"] <= 1.0
    # Averaging two sites' training beats chance by far on the shared test set.
    assert matrix["global"]["site-1"]["accuracy"] > 0.5
