"""Ctrl-C during `fedra simulate`: the run stops promptly, records the abort, leaves no script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedra.job import FedJob

BLOCKING_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import fedra
    import fedra.client as flare

    flare.init()
    marker = Path(sys.argv[1])
    while flare.is_running():
        model = flare.receive()
        if model.current_round == 2:
            marker.with_name(flare.get_site_name()).write_text(str(os.getpid()))
            time.sleep(600)  # a long training step, interrupted by the user
        flare.send(fedra.FLModel(params={"w": model.params["w"] + 1}))
    """
)


def _wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose once reaped or defunct.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("launch", "sig"),
    [
        ("in_process", signal.SIGINT),
        ("subprocess", signal.SIGINT),
        ("subprocess", signal.SIGTERM),  # kill PID, a batch scheduler: as Ctrl-C
    ],
)
def test_ctrl_c_aborts_the_run_and_stops_the_scripts(
    tmp_path: Path, launch: str, sig: signal.Signals
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(BLOCKING_SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(2))
    markers = tmp_path / "markers"
    markers.mkdir()
    job = FedJob("blocking", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=3, min_clients=2)
    job.set_persistor(initial_npz="init.npz")
    job.add_executor("ScriptExecutor", script="train.py", launch=launch, args=[str(markers / "x")])
    job.add_file(src / "train.py").add_file(src / "init.npz")
    job.export(tmp_path / "job")
    ws = tmp_path / "ws"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedra.cli",
            "simulate",
            str(tmp_path / "job"),
            "-n",
            "2",
            "-t",
            "2",
            "-w",
            str(ws),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: len(list(markers.iterdir())) == 2, 60, "both sites in round 2")
        pids = [int(p.read_text()) for p in markers.iterdir()]
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    why = "interrupted (SIGTERM)" if sig == signal.SIGTERM else "interrupted (Ctrl-C)"
    assert why in stderr
    summary = json.loads((ws / "summary.json").read_text())
    assert summary["status"] == "FINISHED:ABORTED"
    assert summary["error"] == why
    assert [h["status"] for h in summary["history"]][-1] == "FINISHED:ABORTED"
    if launch == "subprocess":
        for pid in pids:
            assert not _pid_alive(pid), f"script process {pid} survived the abort"
