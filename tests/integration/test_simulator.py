"""The simulator end to end: real job folders, real workflows, real Client API scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fedra
from fedra.core import ConfigError, JobStatus, JobValidationError
from fedra.job import FedJob
from fedra.serverapp import load_npz

INITIAL_MEAN = 4.0  # examples/hello-numpy/app/custom/initial.npz holds 0..8


def expected_mean(num_sites: int, rounds: int) -> float:
    """hello-numpy: site i adds i+1 with weight i+1, so each round adds sum(i^2)/sum(i)."""
    weights = np.arange(1, num_sites + 1, dtype=np.float64)
    return INITIAL_MEAN + rounds * float((weights**2).sum() / weights.sum())


@pytest.mark.parametrize("num_sites", [2, 8])
def test_hello_numpy_matches_closed_form(examples: Path, tmp_path: Path, num_sites: int) -> None:
    summary = fedra.simulate(
        examples / "hello-numpy",
        n_clients=num_sites,
        threads=2,
        workspace=tmp_path,
        show_progress=False,
    )
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    final = load_npz(tmp_path / "models" / "final.npz")["weights"]
    initial = np.arange(9, dtype=np.float64).reshape(3, 3)
    shift = expected_mean(num_sites, 3) - INITIAL_MEAN
    np.testing.assert_allclose(final, initial + shift, rtol=1e-6)
    assert final.dtype == np.float32
    assert summary.final_metrics["mean_weight"] == pytest.approx(expected_mean(num_sites, 3))
    for round_num in (1, 2, 3):
        assert (tmp_path / "models" / f"round-{round_num:03d}.npz").is_file()
    assert (tmp_path / "models" / "best.npz").is_file()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["status"] == "FINISHED:COMPLETED"
    assert [r["round"] for r in written["rounds"] if r["workflow"] == "FedAvg"] == [1, 2, 3]
    assert written["sites"] == [f"site-{i}" for i in range(1, num_sites + 1)]


def test_metrics_land_in_tensorboard_files(examples: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fedra.simulate(examples / "hello-numpy", n_clients=2, workspace=tmp_path, show_progress=False)
    for site in ("site-1", "site-2"):
        accumulator = EventAccumulator(str(tmp_path / "tb_events" / site))
        accumulator.Reload()
        events = accumulator.Scalars("mean_weight_received")
        assert [e.step for e in events] == [1, 2, 3]
        assert events[0].value == pytest.approx(INITIAL_MEAN)
        assert events[1].value == pytest.approx(expected_mean(2, 1))


def _numpy_job(tmp_path: Path, examples: Path, launch: str, script: str = "train.py") -> FedJob:
    job = FedJob("numpy-" + launch.replace("_", "-"), min_clients=2)
    job.add_workflow("FedAvg", num_rounds=3, min_clients=2)
    job.set_persistor(initial_npz="initial.npz", key_metric="mean_weight")
    job.add_executor("ScriptExecutor", script=script, launch=launch)
    custom = examples / "hello-numpy" / "app" / "custom"
    job.add_file(custom / "initial.npz")
    job.add_file(custom / "train.py")
    return job


def test_job_api_and_subprocess_launch_give_the_same_model(examples: Path, tmp_path: Path) -> None:
    results = {}
    for launch in ("in_process", "subprocess"):
        ws = tmp_path / launch
        summary = fedra.simulate(
            _numpy_job(tmp_path, examples, launch),
            n_clients=3,
            threads=3,
            workspace=ws,
            show_progress=False,
        )
        assert summary.status == JobStatus.FINISHED_COMPLETED, summary.site_traceback
        results[launch] = load_npz(ws / "models" / "final.npz")["weights"]
        assert (ws / "job" / "meta.json").is_file()  # the exported folder
    # Arrival order differs between runs, so float32 sums may differ in the last bit.
    np.testing.assert_allclose(results["in_process"], results["subprocess"], rtol=1e-6)
    assert results["in_process"].mean() == pytest.approx(expected_mean(3, 3))


FAILING_SCRIPT = textwrap.dedent(
    """
    import fedra
    import fedra.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        if flare.get_site_name() == "site-2" and model.current_round == 2:
            raise RuntimeError("disk full on site-2")
        flare.send(fedra.FLModel(params={"w": model.params["w"] + 1}))
    """
)


def _failing_job(tmp_path: Path, launch: str) -> Path:
    (tmp_path / "src").mkdir()
    script = tmp_path / "src" / "train.py"
    script.write_text(FAILING_SCRIPT)
    np.savez(tmp_path / "src" / "init.npz", w=np.zeros(4))
    job = FedJob("failing", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=5, min_clients=2, wait_time_after_min_received=60.0)
    job.set_persistor(initial_npz="init.npz")
    job.add_executor("ScriptExecutor", script="train.py", launch=launch)
    job.add_file(script).add_file(tmp_path / "src" / "init.npz")
    folder = tmp_path / "failing-job"
    job.export(folder)
    return folder


@pytest.mark.timeout(60)
@pytest.mark.parametrize("launch", ["in_process", "subprocess"])
def test_a_site_that_raises_stops_the_run_with_its_traceback(tmp_path: Path, launch: str) -> None:
    folder = _failing_job(tmp_path, launch)
    summary = fedra.simulate(
        folder, n_clients=3, threads=3, workspace=tmp_path / "ws", show_progress=False
    )
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert summary.failed_site == "site-2"
    assert summary.site_traceback is not None
    assert "disk full on site-2" in summary.site_traceback
    assert "RuntimeError" in summary.site_traceback
    assert [r["round"] for r in summary.rounds] == [1]
    written = json.loads((tmp_path / "ws" / "summary.json").read_text())
    assert written["failed_site"] == "site-2"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "fedra.cli", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(120)
def test_cli_reports_the_failing_site_and_exits_nonzero(tmp_path: Path) -> None:
    folder = _failing_job(tmp_path, "in_process")
    done = _cli("simulate", str(folder), "-n", "2", "-w", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    assert "site-2" in done.stderr
    assert "disk full on site-2" in done.stderr
    assert "Traceback" in done.stderr


@pytest.mark.timeout(120)
def test_cli_simulate_prints_rounds_and_final_metrics(examples: Path, tmp_path: Path) -> None:
    done = _cli(
        "simulate",
        str(examples / "hello-numpy"),
        "-n",
        "2",
        "-t",
        "2",
        "-w",
        str(tmp_path / "ws"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "FedAvg round 3:" in done.stderr
    assert f"mean_weight={expected_mean(2, 3):.4g}" in done.stdout
    assert "tensorboard --logdir" in done.stdout


def test_malformed_job_is_rejected_naming_file_and_key(examples: Path, tmp_path: Path) -> None:
    import shutil

    job = tmp_path / "job"
    shutil.copytree(examples / "hello-numpy", job)
    config = job / "app" / "config" / "config_fed_server.json"
    data = json.loads(config.read_text())
    data["workflows"][0]["args"]["num_round"] = 3  # typo
    config.write_text(json.dumps(data))
    with pytest.raises(JobValidationError) as err:
        fedra.simulate(job, n_clients=2, workspace=tmp_path / "ws", show_progress=False)
    assert "app/config/config_fed_server.json" in str(err.value)
    assert "workflows[0].args.num_round" in str(err.value)
    # The message names the unknown argument and what would do, not "got 'unknown argument'".
    assert "unknown argument 'workflows[0].args.num_round' (expected one of:" in str(err.value)
    assert "num_rounds" in str(err.value) and "got" not in str(err.value)
    assert not (tmp_path / "ws" / "models").exists() or not any(
        (tmp_path / "ws" / "models").iterdir()
    )

    done = _cli("job", "validate", str(job), cwd=tmp_path)
    assert done.returncode == 2
    assert "workflows[0].args.num_round" in done.stderr

    (job / "meta.json").write_text('{"name": "x",\n "deploy_map": ')
    done = _cli("job", "validate", str(job), cwd=tmp_path)
    assert done.returncode == 2
    assert "meta.json" in done.stderr and "line 2" in done.stderr


def test_unknown_component_and_bad_values_are_named(examples: Path, tmp_path: Path) -> None:
    job = FedJob("bad")
    job.add_workflow("FedAverage", num_rounds=2)
    job.add_executor("ScriptExecutor", script="train.py")
    with pytest.raises(JobValidationError, match=r"workflows\[0\]\.class.*FedAvg"):
        job.export(tmp_path / "bad")
    job.workflows[0] = {"class": "FedAvg", "args": {"num_rounds": "three"}}
    with pytest.raises(JobValidationError, match=r"num_rounds: expected an integer"):
        job.export(tmp_path / "bad")
    job.workflows[0] = {"class": "FedAvg", "args": {"num_rounds": 0}}
    with pytest.raises(JobValidationError, match="num_rounds must be an integer >= 1"):
        job.export(tmp_path / "bad")
    job.workflows[0] = {"class": "FedAvg", "args": {"num_rounds": 1}}
    job.executors[0]["args"]["launch"] = "inprocess"
    with pytest.raises(JobValidationError, match=r"executors\[0\]\.args.*launch must be one of"):
        job.export(tmp_path / "bad")


def test_script_outside_custom_is_refused(examples: Path, tmp_path: Path) -> None:
    job = FedJob("escape", min_clients=1)
    job.add_workflow("FedAvg", num_rounds=1)
    job.add_executor("ScriptExecutor", script="../../outside.py")
    job.add_file(examples / "hello-numpy" / "app" / "custom" / "train.py")
    with pytest.raises(JobValidationError, match="must be a path inside the app's custom/"):
        fedra.simulate(job, n_clients=1, workspace=tmp_path / "ws", show_progress=False)
    job.executors[0]["args"]["script"] = "missing.py"
    with pytest.raises(JobValidationError, match=r"'missing\.py' not found"):
        job.export(tmp_path / "job")


def test_a_bad_job_leaves_the_previous_results_alone(examples: Path, tmp_path: Path) -> None:
    fedra.simulate(examples / "hello-numpy", n_clients=2, workspace=tmp_path, show_progress=False)
    before = (tmp_path / "models" / "final.npz").read_bytes()
    with pytest.raises(ConfigError):
        fedra.simulate(
            examples / "hello-numpy", n_clients=1, workspace=tmp_path, show_progress=False
        )
    assert (tmp_path / "models" / "final.npz").read_bytes() == before
    assert (tmp_path / "summary.json").is_file()


def test_mandatory_site_missing_is_a_config_error(examples: Path, tmp_path: Path) -> None:
    job = _numpy_job(tmp_path, examples, "in_process")
    job.mandatory_clients = ["hospital-9"]
    with pytest.raises(ConfigError, match=r"mandatory_clients \['hospital-9'\]"):
        fedra.simulate(job, n_clients=2, workspace=tmp_path / "ws", show_progress=False)


def test_site_count_below_min_clients_is_a_config_error(examples: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="min_clients=2"):
        fedra.simulate(
            examples / "hello-numpy", n_clients=1, workspace=tmp_path, show_progress=False
        )


def test_resume_from_snapshot_finishes_with_the_same_model(examples: Path, tmp_path: Path) -> None:
    full = fedra.simulate(
        examples / "hello-numpy", n_clients=2, workspace=tmp_path / "a", show_progress=False
    )
    assert full.status == JobStatus.FINISHED_COMPLETED
    # A workspace whose run stopped after round 1: keep only round 1's snapshot.
    partial = tmp_path / "b"
    job = FedJob("hello-numpy-1", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=1, min_clients=2, final_validation=False)
    job.set_persistor(initial_npz="initial.npz", key_metric="mean_weight")
    job.add_executor("ScriptExecutor", script="train.py")
    custom = examples / "hello-numpy" / "app" / "custom"
    job.add_file(custom / "initial.npz").add_file(custom / "train.py")
    fedra.simulate(job, n_clients=2, workspace=partial, show_progress=False)
    resumed = fedra.simulate(
        examples / "hello-numpy", n_clients=2, workspace=partial, show_progress=False, resume=True
    )
    assert resumed.status == JobStatus.FINISHED_COMPLETED
    # The summary lists the whole history: round 1 (from the snapshot), then the rounds run now.
    assert [r["round"] for r in resumed.rounds if r["workflow"] == "FedAvg"] == [1, 2, 3]
    np.testing.assert_array_equal(
        load_npz(partial / "models" / "final.npz")["weights"],
        load_npz(tmp_path / "a" / "models" / "final.npz")["weights"],
    )


def test_fedadam_from_a_job_config_takes_fedavg_arguments(examples: Path, tmp_path: Path) -> None:
    job = FedJob("numpy-fedadam", min_clients=2)
    job.add_workflow("FedAdam", num_rounds=2, min_clients=2, server_lr=0.5, aggregator="median")
    job.set_persistor(initial_npz="initial.npz", key_metric="mean_weight")
    job.add_executor("ScriptExecutor", script="train.py")
    custom = examples / "hello-numpy" / "app" / "custom"
    job.add_file(custom / "initial.npz").add_file(custom / "train.py")
    summary = fedra.simulate(job, n_clients=2, workspace=tmp_path, show_progress=False)
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    before = np.arange(9, dtype=np.float32).reshape(3, 3)
    after = load_npz(tmp_path / "models" / "final.npz")["weights"]
    assert np.all(after > before)  # the server optimizer moved every weight up
    job.workflows[0]["args"]["num_round"] = 2
    with pytest.raises(JobValidationError, match=r"workflows\[0\]\.args\.num_round"):
        job.export(tmp_path / "bad")


DEBUG_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import fedra
    import fedra.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        w = model.params["w"]
        if flare.get_site_name() == "site-2" and model.current_round == 2:
            w = w * np.nan
        flare.send(fedra.FLModel(params={"w": w + 1, "debug": np.arange(3.0)}))
    """
)


def _debug_job(tmp_path: Path, *filters: tuple[str, dict[str, object]]) -> FedJob:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(DEBUG_SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(2))
    job = FedJob("filtered", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=2, min_clients=2, final_validation=False)
    job.set_persistor(initial_npz="init.npz")
    job.add_executor("ScriptExecutor", script="train.py")
    job.add_file(src / "train.py").add_file(src / "init.npz")
    for name, args in filters:
        job.add_filter(name, **args)
    return job


def test_result_filters_run_on_every_site(tmp_path: Path) -> None:
    job = _debug_job(tmp_path, ("ExcludeVars", {"names": ["debug"]}), ("RejectNonFinite", {}))
    summary = fedra.simulate(job, n_clients=2, workspace=tmp_path / "ws", show_progress=False)
    # site-2 sends NaN in round 2: the filter chain stops it there, naming the param.
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert summary.failed_site == "site-2"
    assert "'w'" in (summary.site_traceback or "")
    round1 = load_npz(tmp_path / "ws" / "models" / "round-001.npz")
    assert set(round1) == {"w"}  # "debug" never left the sites
    with pytest.raises(JobValidationError, match=r"task_result_filters\[0\]\.class"):
        _debug_job(tmp_path, ("NoSuchFilter", {})).export(tmp_path / "bad")


def test_scripts_in_threads_leave_the_programs_main_module_in_place(
    examples: Path, tmp_path: Path
) -> None:
    """runpy swaps ``__main__`` per script; concurrent scripts must not leave one behind."""
    from fedra.job import activate_custom_dirs

    main = sys.modules["__main__"]
    for run in range(5):
        fedra.simulate(
            examples / "hello-numpy",
            n_clients=4,
            threads=2,
            workspace=tmp_path / f"ws-{run}",
            show_progress=False,
        )
        assert sys.modules["__main__"] is main, run
    activate_custom_dirs()  # switching custom folders must not drop the main module either
    assert sys.modules["__main__"] is main
