"""Small jobs for the end-to-end tests, built with the Python job API."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import numpy as np

from fedra.job import FedJob

# Site i (0-based) adds i+1 to every weight and reports num_samples = i+1. Optional hooks:
# a pid file per site, SIGTERM ignored, and a gate: in round GATE_ROUND the site waits until
# the gate file exists (so a test can act while a round is in flight).
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import numpy as np
    import fedra
    import fedra.client as flare

    opts = dict(a.split("=", 1) for a in sys.argv[1:])
    if opts.get("ignore_sigterm") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    flare.init()
    site, index = flare.get_site_name(), flare.get_site_index()
    marks = Path(opts["marks"])
    (marks / f"{site}.pid").write_text(str(os.getpid()))
    (marks / f"{site}.cuda").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
    while flare.is_running():
        model = flare.receive()
        with open(marks / f"{site}.tasks", "a") as tasks:  # when each task began, for tests
            tasks.write(f"{time.time()} {os.getpid()}\\n")
        params = model.params
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"mean": float(np.mean(params["w"]))}))
            continue
        if (model.current_round == int(opts.get("crash_round", "0"))
                and site == opts.get("crash_site")):
            os._exit(3)  # the whole site job process dies, as on a segfault
        gate_round = int(opts.get("gate_round", "0"))
        gate_sites = opts.get("gate_sites", "").split(",")
        if model.current_round == gate_round and site in gate_sites:
            (marks / f"{site}.waiting").write_text(str(os.getpid()))
            while not (marks / "gate").exists():
                time.sleep(0.05)
        flare.log("mean_received", float(np.mean(params["w"])), model.current_round)
        updated = {"w": params["w"] + (index + 1)}
        flare.send(fedra.FLModel(params=updated, metrics={"mean": float(np.mean(params["w"]))},
                                 meta={"num_samples": index + 1}))
    """
)


def open_to_job_processes(folder: Path) -> None:
    """Make ``folder`` (created if needed) a place job scripts may write to.

    A parent running as root runs job processes as an unprivileged user of their own (see
    fedra.runtime.isolation): the folder becomes writable by all (sticky, like /tmp) and the
    folders above it searchable (``--x``), as pytest's temp folders are root's only."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    folder.chmod(0o1777)
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(stat.S_IMODE(mode) | 0o001)


def arithmetic_job(
    folder: Path,
    marks: Path,
    *,
    rounds: int = 3,
    min_clients: int = 2,
    launch: str | None = None,
    wait_after_min: float = 30.0,
    resource_spec: dict[str, dict[str, float]] | None = None,
    priority: int = 0,
    **options: str,
) -> Path:
    """Export a job whose final model has a closed form (see :func:`expected_weights`)."""
    src = folder.parent / (folder.name + "-src")
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.py").write_text(SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(4))
    open_to_job_processes(marks)
    args = [f"marks={marks}"] + [f"{k}={v}" for k, v in options.items()]
    job = FedJob(
        folder.name, min_clients=min_clients, resource_spec=resource_spec, priority=priority
    )
    job.add_workflow(
        "FedAvg",
        num_rounds=rounds,
        min_clients=min_clients,
        wait_time_after_min_received=wait_after_min,
    )
    job.set_persistor(initial_npz="init.npz", key_metric="mean")
    executor_args: dict[str, object] = {"script": "train.py", "args": args}
    if launch is not None:
        executor_args["launch"] = launch
    job.add_executor("ScriptExecutor", **executor_args)
    job.add_file(src / "train.py").add_file(src / "init.npz")
    job.export(folder)
    return folder


def expected_weights(num_sites: int, rounds: int) -> float:
    """Every weight after ``rounds`` FedAvg rounds of the arithmetic job with all sites."""
    weights = np.arange(1, num_sites + 1, dtype=np.float64)
    return rounds * float((weights**2).sum() / weights.sum())
