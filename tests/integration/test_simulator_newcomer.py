"""A newcomer's mistakes, through the simulator: each is said where the user looks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fedra
from fedra.core import JobStatus
from fedra.job import FedJob

#: A script written for a job with an initial model; the job has none.
NEEDS_A_MODEL = textwrap.dedent(
    """
    import fedra
    import fedra.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        w = model.params["w"]
        flare.send(fedra.FLModel(params={"w": w + 1}, meta={"num_samples": 1}))
    """
)

#: num_samples in metrics, and the model sent back on validate tasks.
MISPLACED = textwrap.dedent(
    """
    import numpy as np
    import fedra
    import fedra.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        w = model.params["w"]
        n = flare.get_site_index() + 1
        flare.send(fedra.FLModel(params={"w": w + n}, metrics={"num_samples": n}))
    """
)


def _job(tmp_path: Path, script: str, *, initial: bool, launch: str = "in_process") -> FedJob:
    import numpy as np

    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(script)
    job = FedJob("newcomer", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=2, min_clients=2)
    job.add_executor("ScriptExecutor", script="train.py", launch=launch)
    job.add_file(src / "train.py")
    if initial:
        np.savez(src / "init.npz", w=np.zeros(2, dtype=np.float32))
        job.set_persistor(initial_npz="init.npz")
        job.add_file(src / "init.npz")
    return job


@pytest.mark.parametrize("launch", ["in_process", "subprocess"])
def test_a_job_without_an_initial_model_says_what_is_missing(tmp_path: Path, launch: str) -> None:
    job = _job(tmp_path, NEEDS_A_MODEL, initial=False, launch=launch)
    summary = fedra.simulate(job, n_clients=2, workspace=tmp_path / "ws", show_progress=False)
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    traceback = summary.site_traceback or ""
    assert "'NoneType' object is not subscriptable" in traceback
    assert "the job has no initial model" in traceback
    assert "initial_npz" in traceback and "model.params is None" in traceback


def test_the_cli_prints_the_missing_model_hint(tmp_path: Path) -> None:
    _job(tmp_path, NEEDS_A_MODEL, initial=False).export(tmp_path / "job")
    args = ["simulate", str(tmp_path / "job"), "-n", "2", "-w", str(tmp_path / "ws"), "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "fedra.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert "the job has no initial model" in done.stderr


def test_misplaced_num_samples_and_validate_params_are_warned_in_the_log(tmp_path: Path) -> None:
    from fedra.workflows import _common

    _common._warned.clear()
    job = _job(tmp_path, MISPLACED, initial=True)
    ws = tmp_path / "ws"
    summary = fedra.simulate(job, n_clients=2, workspace=ws, show_progress=False)
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    log = (ws / "log.txt").read_text()
    for site in ("site-1", "site-2"):
        assert f"{site}: num_samples is in the result's metrics, not its meta" in log
        assert f"{site}: the result of a 'validate' task has params; they are not used" in log
