"""Simulator benchmark: seconds per FedAvg round and peak memory, against the targets.

Run with ``make bench`` or ``.venv/bin/python -m bench.simulator``. Two ways of running a
site's code are measured on the same FedAvg job (numpy arrays, ``threads=2``):

* ``script``: the Client API path, a training script in ``custom/`` run by
  ``ScriptExecutor(launch="in_process")`` (one script thread per site);
* ``executor``: a plain :class:`fedra.client.Executor` subclass in ``custom/``, called
  directly by the site worker: the runtime's own overhead, without script threads.

"Training" is ``params + 1`` with ``num_samples = site index + 1``. Seconds per round come
from the run summary (``summary.rounds[i]["seconds"]``, FedAvg rounds only); wall time is
the whole ``simulate()`` call (job export, site start-up, rounds, final validation, files).
The 100 MB model runs in a fresh child process (``--child``) so that its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) is that of one simulation alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil

from bench.machine import machine_info
from bench.table import format_table, verdict
from fedra.core import JobStatus
from fedra.job import FedJob
from fedra.serverapp.runstore import write_npz
from fedra.simulator import simulate

REPO = Path(__file__).resolve().parents[1]
JOB_FILES = Path(__file__).resolve().parent / "job_files"
PATHS = ("script", "executor")
THREADS = 2
MiB = 2**20

#: Targets from the issue (2-core machine).
TARGET_ROUND_S = 0.020  # seconds per round with 8 sites, 3x3 model
TARGET_ROUND_SITES = 8
TARGET_WALL_S = 10.0  # whole simulate() call, 1000 sites x 2 rounds
TARGET_WALL_SITES = 1000
TARGET_WALL_ROUNDS = 2
TARGET_RSS_RATIO = 3.0  # peak RSS / model size, 100 MB model, any number of sites

#: Figures quoted by the issue, measured earlier on this machine type.
COMPARISON = (
    "Flower 1.42: 0.10 s/round with 2-8 sites; ~12 ms per site per round with 1000 sites; "
    "peak RSS 11 GB for a 1 GB model.",
    "NVIDIA FLARE 2.9: ~2 s/round, plus ~9 s fixed start-up.",
)


@dataclass
class SmallResult:
    """Figures of the 3x3-model runs with one executor path and one number of sites."""

    path: str
    sites: int
    rounds: int
    first_round_s: float
    median_round_s: float
    wall_s: float
    repeats: int


@dataclass
class ChildResult:
    """Figures of one run in a fresh child process (the big model, or the cold wall time)."""

    path: str
    sites: int
    rounds: int
    model_bytes: int
    round_s: list[float]
    wall_s: float
    process_s: float
    baseline_rss: int
    peak_rss: int
    peak_rss_before: int
    hwm_rss: int

    @property
    def peak_ratio(self) -> float:
        """Peak RSS over the model size."""
        return self.peak_rss / self.model_bytes

    @property
    def growth_ratio(self) -> float:
        """(Peak RSS - baseline RSS) over the model size: what the simulation added."""
        return (self.peak_rss - self.baseline_rss) / self.model_bytes


@dataclass
class Report:
    """Everything one benchmark run measured."""

    machine: dict[str, str]
    final_validation: bool
    cold_first_call_s: float
    small: list[SmallResult] = field(default_factory=list)
    wall: list[SmallResult] = field(default_factory=list)
    cold_wall: list[ChildResult] = field(default_factory=list)
    big: list[ChildResult] = field(default_factory=list)
    big_threads: int = 1


# -- jobs ---------------------------------------------------------------------------------
def write_initial_npz(path: Path, total_bytes: int, arrays: int) -> int:
    """Write ``arrays`` float32 arrays of ``total_bytes`` in all; return the model's bytes.

    The arrays are zeros from ``np.zeros`` (pages never written), so writing the file does
    not raise this process's peak RSS, which child processes would inherit (see
    :func:`peak_rss`).
    """
    count = max(1, total_bytes // 4 // arrays)
    params = {f"layer{i}": np.zeros(count, dtype=np.float32) for i in range(arrays)}
    with open(path, "wb") as handle:
        write_npz(handle, params)
    return sum(a.nbytes for a in params.values())


def write_small_npz(path: Path) -> int:
    """Write the 3x3 model; return its bytes."""
    params = {"weights": np.zeros((3, 3), dtype=np.float32)}
    with open(path, "wb") as handle:
        write_npz(handle, params)
    return params["weights"].nbytes


def build_job(path: str, sites: int, rounds: int, final_validation: bool, npz: Path) -> FedJob:
    """A FedAvg job for ``sites`` sites whose initial model is ``npz``.

    ``path`` is ``script`` (Client API script, in-process ScriptExecutor) or ``executor``
    (a custom Executor subclass).
    """
    job = FedJob(f"bench-{path}", min_clients=sites)
    job.add_workflow(
        "FedAvg", num_rounds=rounds, min_clients=sites, final_validation=final_validation
    )
    if path == "script":
        job.add_executor("ScriptExecutor", script="bench_train.py", launch="in_process")
        job.add_file(JOB_FILES / "bench_train.py")
    elif path == "executor":
        job.add_executor(custom="bench_executor.AddOneExecutor")
        job.add_file(JOB_FILES / "bench_executor.py")
    else:
        raise ValueError(f"unknown path {path!r}")
    job.set_persistor(initial_npz="initial.npz")
    job.add_file(npz, "initial.npz")
    return job


def run_job(
    job: FedJob, sites: int, workspace: Path, threads: int = THREADS
) -> tuple[list[float], float]:
    """Run ``job`` with ``simulate()``; return (FedAvg round seconds, wall seconds)."""
    started = time.perf_counter()
    summary = simulate(
        job, n_clients=sites, threads=threads, workspace=workspace, show_progress=False
    )
    wall = time.perf_counter() - started
    if summary.status != JobStatus.FINISHED_COMPLETED:
        raise RuntimeError(f"the benchmark job failed: {summary.error}\n{summary.site_traceback}")
    rounds = [float(r["seconds"]) for r in summary.rounds if r["workflow"] == "FedAvg"]
    return rounds, wall


def measure_small(
    path: str,
    sites: int,
    rounds: int,
    repeat: int,
    final_validation: bool,
    workdir: Path,
    npz: Path,
) -> SmallResult:
    """Run the 3x3 job ``repeat`` times; medians over repeats (rounds 2..N for s/round)."""
    firsts: list[float] = []
    later: list[float] = []
    walls: list[float] = []
    for _ in range(repeat):
        job = build_job(path, sites, rounds, final_validation, npz)
        # One workspace per path, reused: simulate() clears the outputs of the last run.
        round_s, wall = run_job(job, sites, workdir / f"ws-{path}")
        firsts.append(round_s[0])
        later.extend(round_s[1:] or round_s)
        walls.append(wall)
    return SmallResult(
        path=path,
        sites=sites,
        rounds=rounds,
        first_round_s=statistics.median(firsts),
        median_round_s=statistics.median(later),
        wall_s=statistics.median(walls),
        repeats=repeat,
    )


# -- runs in a fresh child process (the big model, the cold 1000-site run) ----------------
def current_rss() -> int:
    """This process's resident set size in bytes."""
    return int(psutil.Process().memory_info().rss)


def max_rss() -> int:
    """This process's peak resident set size so far in bytes (Linux reports KiB).

    On Linux ``ru_maxrss`` survives ``execve``: a child starts with the peak of the process
    that spawned it (the parent's address space at the time of the exec). The parent
    therefore runs the child processes before its own in-process runs, while it is small.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def hwm_rss() -> int:
    """Peak RSS of this process image alone (``VmHWM``, Linux), or 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def child_run(args: argparse.Namespace) -> int:
    """Run one simulation (``--child``) and print its figures as one JSON line."""
    if args.block_tensorboardx:
        # Diagnostic: make ``import tensorboardX`` fail (as if the extra were not installed).
        sys.modules["tensorboardX"] = None  # type: ignore[assignment]

    npz = Path(args.npz)
    job = build_job(args.path, args.sites, args.rounds, args.final_validation, npz)
    gc.collect()
    before = max_rss()
    baseline = current_rss()
    round_s, wall = run_job(
        job, args.sites, Path(args.workdir) / f"ws-child-{args.path}", args.threads
    )
    peak = max_rss()
    result = {
        "round_s": round_s,
        "wall_s": wall,
        "baseline_rss": baseline,
        "peak_rss": peak,
        "peak_rss_before": before,
        "hwm_rss": hwm_rss(),
    }
    print(json.dumps(result))
    return 0


def measure_child(
    path: str,
    sites: int,
    rounds: int,
    npz: Path,
    model_bytes: int,
    workdir: Path,
    final_validation: bool = True,
    block_tensorboardx: bool = False,
    threads: int = THREADS,
) -> ChildResult:
    """Run one job in a fresh ``python -m bench.simulator --child`` process.

    ``process_s`` is the whole child process (interpreter start, imports, job build,
    ``simulate()``, exit), timed by the parent.
    """
    command = [
        sys.executable, "-m", "bench.simulator", "--child", "--path", path,
        "--sites", str(sites), "--rounds", str(rounds), "--npz", str(npz),
        "--workdir", str(workdir), "--threads", str(threads),
    ]  # fmt: skip
    if not final_validation:
        command.append("--no-final-validation")
    if block_tensorboardx:
        command.append("--block-tensorboardx")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return ChildResult(
        path=path,
        sites=sites,
        rounds=rounds,
        model_bytes=model_bytes,
        process_s=process_s,
        **data,
    )


# -- report -------------------------------------------------------------------------------
SMALL_HEADERS = (
    "path", "sites", "rounds", "round 1 ms", "ms/round", "ms/site/round", "wall s", "target",
    "result",
)  # fmt: skip
WALL_HEADERS = (
    "path", "sites", "rounds", "round 1 s", "round 2 s", "simulate() s", "fresh simulate() s",
    "process s", "peak MiB", "target", "result",
)  # fmt: skip
BIG_HEADERS = (
    "path", "sites", "rounds", "round 1 s", "s/round", "wall s", "base MiB", "peak MiB",
    "VmHWM MiB", "peak/model", "(peak-base)/model", "target", "result",
)  # fmt: skip


def small_rows(results: Sequence[SmallResult]) -> list[list[str]]:
    """Rows of the 3x3-model table."""
    rows = []
    for r in results:
        target = result = ""
        if r.sites == TARGET_ROUND_SITES:
            target = f"<= {TARGET_ROUND_S * 1000:.0f} ms/round"
            result = verdict(r.median_round_s <= TARGET_ROUND_S)
        rows.append([
            r.path, str(r.sites), str(r.rounds), f"{r.first_round_s * 1000:.1f}",
            f"{r.median_round_s * 1000:.1f}", f"{r.median_round_s * 1000 / r.sites:.3f}",
            f"{r.wall_s:.3f}", target, result,
        ])  # fmt: skip
    return rows


def wall_rows(warm: Sequence[SmallResult], cold: Sequence[ChildResult]) -> list[list[str]]:
    """Rows of the 1000-site wall-time table (in this process, and in a fresh one)."""
    rows = []
    for w, c in zip(warm, cold, strict=True):
        worst = max(w.wall_s, c.wall_s)
        rows.append([
            w.path, str(w.sites), str(w.rounds), f"{w.first_round_s:.3f}",
            f"{w.median_round_s:.3f}", f"{w.wall_s:.3f}", f"{c.wall_s:.3f}",
            f"{c.process_s:.3f}", f"{c.peak_rss / MiB:.0f}", f"<= {TARGET_WALL_S:.0f} s",
            verdict(worst <= TARGET_WALL_S),
        ])  # fmt: skip
    return rows


def big_rows(results: Sequence[ChildResult]) -> list[list[str]]:
    """Rows of the big-model table."""
    return [
        [
            r.path, str(r.sites), str(r.rounds), f"{r.round_s[0]:.3f}",
            f"{statistics.median(r.round_s[1:] or r.round_s):.3f}", f"{r.wall_s:.2f}",
            f"{r.baseline_rss / MiB:.0f}", f"{r.peak_rss / MiB:.0f}", f"{r.hwm_rss / MiB:.0f}",
            f"{r.peak_ratio:.2f}x", f"{r.growth_ratio:.2f}x", f"<= {TARGET_RSS_RATIO:.1f}x",
            verdict(r.peak_ratio <= TARGET_RSS_RATIO),
        ]
        for r in results
    ]  # fmt: skip


def render(report: Report) -> str:
    """The report as text: machine, three tables with targets, comparison figures."""
    out: list[str] = ["Fedra simulator benchmark (FedAvg on numpy arrays)", ""]
    out += [f"  {key}: {value}" for key, value in report.machine.items()]
    validation = "on" if report.final_validation else "off"
    out += [
        f"  simulate(threads={THREADS}, show_progress=False); FedAvg final_validation={validation}",
        "  first simulate() call in this process (lazy imports included, 2 sites x 1 round): "
        f"{report.cold_first_call_s:.3f} s",
        "",
    ]
    if report.small:
        out += [
            "3x3 model: ms per round = median of FedAvg rounds 2..N from summary.rounds "
            "(round 1 also starts the executors / script threads); wall = whole simulate() call",
            format_table(SMALL_HEADERS, small_rows(report.small)),
            "",
        ]
    if report.wall and report.cold_wall:
        out += [
            f"{TARGET_WALL_SITES} sites x {TARGET_WALL_ROUNDS} rounds, 3x3 model: wall time of "
            "the whole simulate() call, in this process (after a first call) and as the first "
            "call of a fresh process; 'process s' adds interpreter start, imports and exit; "
            "the target is checked on the slower simulate() figure",
            format_table(WALL_HEADERS, wall_rows(report.wall, report.cold_wall)),
            "",
        ]
    if report.big:
        size = report.big[0].model_bytes / MiB
        out += [
            f"{size:.0f} MiB model (4 float32 arrays, initial .npz via the persistor), a fresh "
            "child process per row: peak = ru_maxrss at the end (VmHWM: the same from "
            "/proc/self/status); base = RSS just before simulate(), after imports; "
            f"simulate(threads={report.big_threads})",
            format_table(BIG_HEADERS, big_rows(report.big)),
            "",
        ]
    out += ["For comparison (figures quoted by the issue, same machine type):"]
    out += [f"  {line}" for line in COMPARISON]
    return "\n".join(out)


# -- entry point --------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sites",
        default="2,8,100,1000",
        help="comma-separated site counts for the 3x3 model (default 2,8,100,1000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="FedAvg rounds for the 3x3 model (default 5; the 1000-site wall "
        f"target always uses {TARGET_WALL_ROUNDS})",
    )
    parser.add_argument(
        "--big-mb", type=int, default=100, help="size of the big model in MiB (default 100)"
    )
    parser.add_argument(
        "--big-sites",
        default="2,8",
        help="comma-separated site counts for the big model (default 2,8)",
    )
    parser.add_argument("--skip-big", action="store_true", help="skip the big-model runs")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per 3x3 measurement; medians are reported (default 3)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"executor paths to measure (default {','.join(PATHS)})",
    )
    parser.add_argument(
        "--no-final-validation",
        dest="final_validation",
        action="store_false",
        help="turn FedAvg's final validation off",
    )
    parser.add_argument(
        "--block-tensorboardx",
        action="store_true",
        help="diagnostic: run the child processes as if tensorboardX "
        "(which imports torch) were not installed",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    # Internal: one run in a fresh process (used by the parent).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--big-threads",
        type=int,
        default=1,
        help="simulate(threads=...) for the big model (default 1: one result in flight, "
        "the setting for the lowest memory)",
    )
    parser.add_argument("--path", default="script", help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def int_list(text: str) -> list[int]:
    """``"2,8"`` -> ``[2, 8]``."""
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; return the exit status."""
    args = parse_args(argv)
    if args.child:
        args.sites = int(args.sites)
        return child_run(args)
    paths = [p for p in args.paths.split(",") if p]
    sites = int_list(args.sites)
    fv = args.final_validation

    def progress(text: str) -> None:
        print(f"  measuring {text} ...", file=sys.stderr, flush=True)

    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="fedra-bench-") as tmp:
        workdir = Path(tmp)
        small_npz = workdir / "small.npz"
        small_bytes = write_small_npz(small_npz)
        report = Report(machine, fv, 0.0, big_threads=args.big_threads)
        # Child processes first, while this process is small (see max_rss()).
        if TARGET_WALL_SITES in sites:
            for path in paths:
                progress(f"{path}, {TARGET_WALL_SITES} sites x {TARGET_WALL_ROUNDS} rounds, fresh")
                cold = [
                    measure_child(
                        path, TARGET_WALL_SITES, TARGET_WALL_ROUNDS, small_npz, small_bytes,
                        workdir, fv, args.block_tensorboardx,
                    )
                    for _ in range(args.repeat)
                ]  # fmt: skip
                report.cold_wall.append(sorted(cold, key=lambda r: r.wall_s)[len(cold) // 2])
        if not args.skip_big:
            big_npz = workdir / "big.npz"
            model_bytes = write_initial_npz(big_npz, args.big_mb * MiB, arrays=4)
            for path in paths:
                for n in int_list(args.big_sites):
                    progress(f"{path}, {n} sites, {args.big_mb} MiB model")
                    report.big.append(
                        measure_child(
                            path, n, TARGET_WALL_ROUNDS, big_npz, model_bytes, workdir, fv,
                            args.block_tensorboardx, args.big_threads,
                        )
                    )  # fmt: skip
            big_npz.unlink()
        progress("the first simulate() call in this process")
        started = time.perf_counter()
        run_job(build_job("executor", 2, 1, fv, small_npz), 2, workdir / "ws-first")
        report.cold_first_call_s = time.perf_counter() - started
        for path in paths:
            for n in sites:
                progress(f"{path}, {n} sites x {args.rounds} rounds")
                report.small.append(
                    measure_small(path, n, args.rounds, args.repeat, fv, workdir, small_npz)
                )
        if TARGET_WALL_SITES in sites:
            for path in paths:
                progress(f"{path}, {TARGET_WALL_SITES} sites x {TARGET_WALL_ROUNDS} rounds")
                report.wall.append(measure_small(
                    path, TARGET_WALL_SITES, TARGET_WALL_ROUNDS, args.repeat, fv, workdir,
                    small_npz,
                ))  # fmt: skip
    print(render(report), flush=True)
    if args.json is not None:
        data = asdict(report)
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
