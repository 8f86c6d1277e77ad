"""The simulator's Ray backend: same results as the thread backend, site failures, clean exits.

The Ray tests share one local Ray instance (2 CPUs, no dashboard, its own temp folder) started
by a module fixture, which also checks that shutting it down leaves no process behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import fedra
from fedra.cli import main as cli_main
from fedra.core import ConfigError, FLModel, JobStatus
from fedra.job import FedJob
from fedra.serverapp import load_npz
from fedra.simulator import RayOptions
from fedra.simulator.ray_worker import model_from_plain, model_to_plain

#: The tests that run Ray; skipped where the ``ray`` extra is not installed.
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs the ray extra"
)

INITIAL_MEAN = 4.0  # examples/hello-numpy/app/custom/initial.npz holds 0..8


def expected_mean(num_sites: int, rounds: int) -> float:
    """hello-numpy: site i adds i+1 with weight i+1, so each round adds sum(i^2)/sum(i)."""
    weights = np.arange(1, num_sites + 1, dtype=np.float64)
    return INITIAL_MEAN + rounds * float((weights**2).sum() / weights.sum())


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _wait_until_gone(pids: set[int], deadline_s: float) -> set[int]:
    """The processes of ``pids`` still alive after waiting up to ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    alive = {pid for pid in pids if psutil.pid_exists(pid)}
    while alive and time.monotonic() < deadline:
        _gone, still = psutil.wait_procs(
            [psutil.Process(pid) for pid in alive if psutil.pid_exists(pid)], timeout=0.5
        )
        alive = {p.pid for p in still}
    return alive


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance for this module; its shutdown must leave no process behind."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.fail("Ray is already initialized in this process")
    before = _descendants()
    temp = tempfile.mkdtemp(prefix="fr-", dir="/tmp")  # short: Ray's socket paths have a limit
    started: set[int] = set()
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=temp,
            logging_level=logging.WARNING,
            address="local",
        )
        started = _descendants() - before
        yield ray
    finally:
        ray.shutdown()
        leftover = _wait_until_gone((_descendants() - before) | started, 30.0)
        _kill(leftover)
        shutil.rmtree(temp, ignore_errors=True)
        assert not leftover, f"Ray left processes behind: {sorted(leftover)}"


def _without_times(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json minus what differs between any two runs (id, times, workspace path)."""
    data = dict(summary)
    for key in ("job_id", "seconds", "tensorboard"):
        data.pop(key)
    data["history"] = [{k: v for k, v in h.items() if k != "at"} for h in data["history"]]
    data["rounds"] = [{k: v for k, v in r.items() if k != "seconds"} for r in data["rounds"]]
    return data


def _jsonl(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(120)
def test_hello_numpy_gives_the_thread_backends_results(
    ray_instance: Any, examples: Path, tmp_path: Path
) -> None:
    job = examples / "hello-numpy"
    threads, ray = tmp_path / "threads", tmp_path / "ray"
    first = fedra.simulate(job, n_clients=4, threads=2, workspace=threads, show_progress=False)
    second = fedra.simulate(
        job,
        n_clients=4,
        workspace=ray,
        show_progress=False,
        backend="ray",
        ray_options=RayOptions(site_cpus=0.5),
    )
    assert first.status == second.status == JobStatus.FINISHED_COMPLETED, second.error
    assert "Ray backend: 4 site actors" in (ray / "log.txt").read_text()  # 2 CPUs / 0.5

    # Every model file, bit for bit. FedAvg folds results in as they arrive, and the arrival
    # order differs between backends (and between runs with several threads); float32 sums
    # may then differ in the last bit. Not here: with 4 sites every weight and every partial
    # sum is an integer below 2**24 (the shift per round is sum(i^2)/sum(i) = 3), so the sums
    # are exact in any order and the two runs must agree exactly.
    names = sorted(p.name for p in (threads / "models").iterdir())
    assert names == sorted(p.name for p in (ray / "models").iterdir())
    assert "final.npz" in names and "round-003.npz" in names
    for name in names:
        if name.endswith(".npz"):
            a, b = load_npz(threads / "models" / name), load_npz(ray / "models" / name)
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=name)
                assert a[key].dtype == b[key].dtype
        else:
            assert json.loads((threads / "models" / name).read_text()) == json.loads(
                (ray / "models" / name).read_text()
            )
    # …and the closed form, computed independently.
    final = load_npz(ray / "models" / "final.npz")["weights"]
    shift = expected_mean(4, 3) - INITIAL_MEAN
    np.testing.assert_array_equal(final, np.arange(9, dtype=np.float32).reshape(3, 3) + shift)

    # summary.json, the metrics files and the TensorBoard scalars of every site.
    a_summary = json.loads((threads / "summary.json").read_text())
    b_summary = json.loads((ray / "summary.json").read_text())
    assert _without_times(a_summary) == _without_times(b_summary)
    assert second.final_metrics == {"mean_weight": expected_mean(4, 3)}
    for site in ("site-1", "site-2", "site-3", "site-4"):
        a_records = _jsonl(threads / "tb_events" / site / "metrics.jsonl")
        assert a_records == _jsonl(ray / "tb_events" / site / "metrics.jsonl")
        assert [r["step"] for r in a_records] == [1, 2, 3]
        a_scalars = _scalars(threads / "tb_events" / site)
        assert a_scalars == _scalars(ray / "tb_events" / site)
        assert [step for step, _ in a_scalars["mean_weight_received"]] == [1, 2, 3]


COUNTING_EXECUTOR = textwrap.dedent(
    '''
    """Counts tasks in memory (this executor instance) and on disk (the site's folder)."""

    from fedra import FLModel
    from fedra.client import Executor


    class CountingExecutor(Executor):
        def __init__(self) -> None:
            self.calls = 0

        def execute(self, task_name, data, ctx):
            self.calls += 1
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            with open(ctx.workdir / "rounds.txt", "a") as handle:
                handle.write(f"{data.current_round}\\n")
            on_disk = len((ctx.workdir / "rounds.txt").read_text().split())
            print(f"{ctx.site_name} ran round {data.current_round}")
            params = {name: value + 1 for name, value in data.params.items()}
            return FLModel(params=params, metrics={"calls": self.calls, "on_disk": on_disk})
    '''
)


def _counting_job(tmp_path: Path) -> FedJob:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "counting.py").write_text(COUNTING_EXECUTOR)
    np.savez(src / "init.npz", w=np.zeros(3, dtype=np.float32))
    job = FedJob("counting", min_clients=3)
    job.add_workflow("FedAvg", num_rounds=3, min_clients=3, final_validation=False)
    job.set_persistor(initial_npz="init.npz")
    job.add_executor(custom="counting.CountingExecutor")
    job.add_file(src / "counting.py").add_file(src / "init.npz")
    return job


def _round_metric(summary: fedra.RunSummary, key: str) -> list[float]:
    return [r["metrics"][key] for r in summary.rounds]


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(120)
def test_sites_keep_files_always_and_memory_only_when_kept(
    ray_instance: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 3 sites on 2 actors (2 CPUs, 1 CPU each): site-1 and site-3 share actor 0, in batches.
    runs = {}
    for name, backend, options in (
        ("threads", "thread", None),
        ("kept", "ray", RayOptions(keep_sites=2)),
        ("restarted", "ray", RayOptions()),
    ):
        summary = fedra.simulate(
            _counting_job(tmp_path),
            n_clients=3,
            workspace=tmp_path / name,
            show_progress=False,
            backend=backend,
            ray_options=options,
        )
        assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
        runs[name] = summary
        # What the sites print reaches this process's stdout, from the actors too.
        printed = capsys.readouterr().out.splitlines()
        expected = {f"site-{i} ran round {r}" for i in (1, 2, 3) for r in (1, 2, 3)}
        assert expected <= set(printed), printed
        np.testing.assert_array_equal(
            load_npz(tmp_path / name / "models" / "final.npz")["w"], np.full(3, 3.0)
        )
    # Files in the site's workspace folder survive between rounds whatever the backend.
    for summary in runs.values():
        assert _round_metric(summary, "on_disk") == [1.0, 2.0, 3.0]
    # Memory does with threads and with sites kept started; not when each task restarts them.
    assert _round_metric(runs["threads"], "calls") == [1.0, 2.0, 3.0]
    assert _round_metric(runs["kept"], "calls") == [1.0, 2.0, 3.0]
    assert _round_metric(runs["restarted"], "calls") == [1.0, 1.0, 1.0]
    rounds = (tmp_path / "restarted" / "sites" / "site-3" / "rounds.txt").read_text().split()
    assert rounds == ["1", "2", "3"]


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

CRASHING_EXECUTOR = textwrap.dedent(
    """
    import os

    from fedra import FLModel
    from fedra.client import Executor


    class CrashingExecutor(Executor):
        def execute(self, task_name, data, ctx):
            if ctx.site_name == "site-2" and data.current_round == 2:
                os._exit(3)  # the whole worker process dies, as on a segfault or OOM kill
            return FLModel(params={"w": data.params["w"] + 1})
    """
)


def _job(tmp_path: Path, script: str | None = None, executor: str | None = None) -> FedJob:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    np.savez(src / "init.npz", w=np.zeros(4))
    job = FedJob("failing", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=5, min_clients=2, wait_time_after_min_received=60.0)
    job.set_persistor(initial_npz="init.npz")
    if script is not None:
        (src / "train.py").write_text(script)
        job.add_executor("ScriptExecutor", script="train.py")
        job.add_file(src / "train.py")
    if executor is not None:
        (src / "crash.py").write_text(executor)
        job.add_executor(custom="crash.CrashingExecutor")
        job.add_file(src / "crash.py")
    job.add_file(src / "init.npz")
    return job


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(120)
def test_a_site_that_raises_stops_the_run_with_its_traceback(
    ray_instance: Any, tmp_path: Path
) -> None:
    summary = fedra.simulate(
        _job(tmp_path, script=FAILING_SCRIPT),
        n_clients=3,
        workspace=tmp_path / "ws",
        show_progress=False,
        backend="ray",
        ray_options=RayOptions(site_cpus=0.5, keep_sites=2),
    )
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert summary.failed_site == "site-2"
    assert summary.site_traceback is not None
    assert "Traceback (most recent call last)" in summary.site_traceback
    assert "RuntimeError: disk full on site-2" in summary.site_traceback
    assert [r["round"] for r in summary.rounds] == [1]
    written = json.loads((tmp_path / "ws" / "summary.json").read_text())
    assert written["failed_site"] == "site-2"
    assert "disk full on site-2" in written["site_traceback"]


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(120)
def test_a_dead_actor_fails_its_sites_with_a_clear_error(ray_instance: Any, tmp_path: Path) -> None:
    summary = fedra.simulate(
        _job(tmp_path, executor=CRASHING_EXECUTOR),
        n_clients=3,
        workspace=tmp_path / "ws",
        show_progress=False,
        backend="ray",
        ray_options=RayOptions(actors=2),
    )
    assert summary.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert summary.failed_site == "site-2"  # alone on actor 1 (site i -> actor i % 2)
    assert "the Ray actor running sites ['site-2'] failed" in (summary.site_traceback or "")
    assert [r["round"] for r in summary.rounds] == [1]


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(60)
def test_actors_the_cluster_cannot_place_are_a_config_error(
    ray_instance: Any, examples: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"of 2 Ray site actors started within 2 s"):
        fedra.simulate(
            examples / "hello-numpy",
            n_clients=2,
            workspace=tmp_path / "ws",
            show_progress=False,
            backend="ray",
            ray_options=RayOptions(site_cpus=2, actors=2, start_timeout=2),
        )


def _ray_processes(marker: str) -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in cmdline or environ.get("RAY_TMPDIR") == marker:
            found.add(proc.info["pid"])
    return found


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(120)
def test_cli_ray_backend_starts_and_stops_its_own_ray(examples: Path, tmp_path: Path) -> None:
    marker = tempfile.mkdtemp(prefix="fr-cli-", dir="/tmp")
    command = [sys.executable, "-m", "fedra.cli", "simulate", str(examples / "hello-numpy")]
    command += ["-n", "3", "-w", str(tmp_path / "ws"), "--backend", "ray", "--address", "local"]
    command += ["--site-cpus", "0.5", "--actors", "2"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(COLUMNS="200", RAY_TMPDIR=marker)
    try:
        done = subprocess.run(
            command,
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
        )
        assert done.returncode == 0, done.stderr
        assert f"mean_weight={expected_mean(3, 3):.4g}" in done.stdout
        assert "FedAvg round 3:" in done.stderr
    finally:
        leftover = _wait_until_gone(_ray_processes(marker), 20.0)
        _kill(leftover)
        shutil.rmtree(marker, ignore_errors=True)
    assert not leftover, f"the run left Ray processes behind: {sorted(leftover)}"


BLOCKING_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import fedra
    import fedra.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        if model.current_round == 2:
            Path(sys.argv[1], flare.get_site_name()).write_text(str(os.getpid()))
            time.sleep(600)  # a long training step, interrupted by the user
        flare.send(fedra.FLModel(params={"w": model.params["w"] + 1}))
    """
)


def _wait_for(condition: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
@needs_ray
@pytest.mark.timeout(120)
def test_ctrl_c_stops_sites_actors_and_ray(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(BLOCKING_SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(2))
    job = FedJob("blocking", min_clients=2)
    job.add_workflow("FedAvg", num_rounds=3, min_clients=2)
    job.set_persistor(initial_npz="init.npz")
    job.add_executor("ScriptExecutor", script="train.py", launch="subprocess", args=[str(markers)])
    job.add_file(src / "train.py").add_file(src / "init.npz")
    job.export(tmp_path / "job")
    marker = tempfile.mkdtemp(prefix="fr-int-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = marker
    command = [sys.executable, "-m", "fedra.cli", "simulate", str(tmp_path / "job"), "-n", "2"]
    command += ["-w", str(tmp_path / "ws"), "-q", "--backend", "ray", "--address", "local"]
    command += ["--keep-sites", "1"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    scripts: set[int] = set()
    try:
        _wait_for(lambda: len(list(markers.iterdir())) == 2, 90, "both sites in round 2")
        scripts = {int(p.read_text()) for p in markers.iterdir()}
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        leftover = _wait_until_gone(_ray_processes(marker) | scripts, 20.0)
        _kill(leftover)
        shutil.rmtree(marker, ignore_errors=True)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert json.loads((tmp_path / "ws" / "summary.json").read_text())["status"] == (
        "FINISHED:ABORTED"
    )
    assert not leftover, f"processes survived the abort: {sorted(leftover)}"


# -- without Ray, and settings (no Ray instance needed) ------------------------------------
@pytest.fixture
def main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``__main__`` module for the in-process CLI (click looks it up).

    Earlier in-process runs with several threads can leave it missing: concurrent
    ``runpy.run_path(run_name="__main__")`` calls of in-process scripts restore each other's
    temporary module, and a later job's ``activate_custom_dirs`` then drops it as the earlier
    job's module (reported in notes/ray.md; not the Ray backend's doing).
    """
    if "__main__" not in sys.modules:
        monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


@pytest.mark.usefixtures("main_module")
def test_ray_backend_without_ray_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    examples: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    (tmp_path / "summary.json").write_text("{}")  # an earlier run's result
    with pytest.raises(ConfigError, match="needs the 'ray' package") as err:
        fedra.simulate(examples / "hello-numpy", workspace=tmp_path, backend="ray")
    assert err.value.hint is not None and "fedra[ray]" in err.value.hint
    assert (tmp_path / "summary.json").read_text() == "{}"  # refused before clearing anything

    code = cli_main(
        ["simulate", str(examples / "hello-numpy"), "-w", str(tmp_path), "--backend", "ray"]
    )
    assert code == 2
    stderr = capsys.readouterr().err
    assert "needs the 'ray' package" in stderr
    assert "pip install 'fedra[ray]'" in stderr


def test_the_thread_backend_never_imports_ray(examples: Path, tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import fedra
        summary = fedra.simulate({str(examples / "hello-numpy")!r}, n_clients=2,
                                 workspace={str(tmp_path / "ws")!r}, show_progress=False)
        assert summary.status.value == "FINISHED:COMPLETED", summary.error
        assert "ray" not in sys.modules, "the thread backend imported ray"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "dask"}, r"backend must be one of \['thread', 'ray'\]"),
        ({"backend": "ray", "threads": 4}, "threads is a setting of the thread backend"),
        ({"ray_options": RayOptions()}, "only used with backend 'ray'"),
        ({"backend": "ray", "ray_options": RayOptions(actors=0)}, "actors must be >= 1"),
        ({"backend": "ray", "ray_options": RayOptions(site_cpus=-1)}, "site_cpus must be >= 0"),
        ({"backend": "ray", "ray_options": RayOptions(site_gpus=1.5)}, "a fraction below 1"),
        (
            {"backend": "ray", "ray_options": RayOptions(site_cpus=0)},
            "set the number of actors",
        ),
        ({"backend": "ray", "ray_options": RayOptions(keep_sites=-1)}, "keep_sites must be"),
    ],
)
def test_bad_backend_settings_are_refused_before_anything_runs(
    examples: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        fedra.simulate(examples / "hello-numpy", workspace=tmp_path / "ws", **kwargs)
    assert not (tmp_path / "ws").exists()


@pytest.mark.usefixtures("main_module")
def test_cli_refuses_ray_options_without_the_ray_backend(
    capsys: pytest.CaptureFixture[str], examples: Path, tmp_path: Path
) -> None:
    job = str(examples / "hello-numpy")
    assert cli_main(["simulate", job, "-w", str(tmp_path), "--site-cpus", "0.5"]) == 2
    assert "--site-cpus: only used with --backend ray" in capsys.readouterr().err
    assert cli_main(["simulate", job, "-w", str(tmp_path), "--backend", "ray", "-t", "2"]) == 2
    assert "with --backend ray use --actors" in capsys.readouterr().err


def test_only_plain_data_crosses_into_ray() -> None:
    model = FLModel(
        params={"w": np.arange(3.0)},
        metrics={"accuracy": 0.5},
        meta={"num_samples": 3, "notes": ["a", {"b": 1}]},
        current_round=2,
        total_rounds=5,
    )
    back = model_from_plain(model_to_plain(model))
    np.testing.assert_array_equal(back.params["w"] if back.params else None, np.arange(3.0))
    assert (back.metrics, back.meta, back.current_round, back.total_rounds) == (
        model.metrics,
        model.meta,
        2,
        5,
    )

    class Anything:
        pass

    with pytest.raises(TypeError, match=r"model\.meta\.obj: only numbers, strings"):
        model_to_plain(FLModel(meta={"obj": Anything()}))
    with pytest.raises(TypeError, match="arrays of Python objects"):
        model_to_plain(FLModel(params={"w": np.array([Anything()], dtype=object)}))
    with pytest.raises(TypeError, match="keys must be strings"):
        model_to_plain(FLModel(meta={"k": {1: 2}}))
