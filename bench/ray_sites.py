"""Ray backend benchmark: many sites, wall time and peak memory of the whole process tree.

Run with ``.venv/bin/python -m bench.ray_sites`` (defaults: 1,000 and 10,000 sites x 2 FedAvg
rounds, 3x3 model, the Client API ``script`` path of ``bench.simulator``, Ray and thread
backends). Each run is a fresh child process (``--child``) calling ``fedra.simulate()``; with
the Ray backend that child starts a local Ray instance (``address="local"``) and stops it at
the end, so Ray's own processes (GCS, raylet, workers) are descendants of the child. The
parent samples the resident set size of the child and all its descendants every 50 ms
(``psutil``) and reports the peak of the sum. RSS counts pages shared between processes
(Ray's object store, shared libraries) once per process, so the sum overstates the memory
the tree really uses; it is the figure a memory limit on the tree would see.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from bench.machine import machine_info
from bench.simulator import REPO, build_job, int_list, write_small_npz
from bench.table import format_table

MiB = 2**20
SAMPLE_S = 0.05


@dataclass
class TreeRun:
    """Figures of one run in a fresh child process."""

    backend: str
    path: str
    sites: int
    rounds: int
    actors: str
    round_s: list[float]
    simulate_s: float
    process_s: float
    peak_tree_rss: int
    peak_processes: int
    driver_hwm_rss: int


class TreeSampler:
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak_rss = 0
        self.peak_processes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak_rss = max(self.peak_rss, total)
            self.peak_processes = max(self.peak_processes, len(procs))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def hwm_rss() -> int:
    """Peak RSS of this process image (``VmHWM``), or 0 where unknown."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child_run(args: argparse.Namespace) -> int:
    """One simulation (``--child``); prints its figures as one JSON line."""
    from fedra.core import JobStatus
    from fedra.simulator import RayOptions, simulate

    workdir = Path(args.workdir)
    npz = workdir / "small.npz"
    write_small_npz(npz)
    job = build_job(args.path, args.sites, args.rounds, True, npz)
    options = None
    if args.backend == "ray":
        options = RayOptions(
            address="local",
            site_cpus=args.site_cpus,
            actors=args.actors,
            keep_sites=args.keep_sites,
        )
    started = time.perf_counter()
    summary = simulate(
        job,
        n_clients=args.sites,
        threads=args.threads if args.backend == "thread" else 1,
        workspace=workdir / "ws",
        show_progress=False,
        backend=args.backend,
        ray_options=options,
    )
    simulate_s = time.perf_counter() - started
    if summary.status != JobStatus.FINISHED_COMPLETED:
        raise RuntimeError(f"the benchmark job failed: {summary.error}\n{summary.site_traceback}")
    rounds = [float(r["seconds"]) for r in summary.rounds if r["workflow"] == "FedAvg"]
    print(json.dumps({"round_s": rounds, "simulate_s": simulate_s, "hwm": hwm_rss()}))
    return 0


def measure(args: argparse.Namespace, backend: str, path: str, sites: int) -> TreeRun:
    """Run one configuration in a fresh child process, sampling its process tree."""
    with tempfile.TemporaryDirectory(prefix="fedra-bench-ray-") as tmp:
        command = [
            sys.executable, "-m", "bench.ray_sites", "--child", "--backend", backend,
            "--path", path, "--sites", str(sites), "--rounds", str(args.rounds),
            "--workdir", tmp, "--threads", str(args.threads),
            "--site-cpus", str(args.site_cpus), "--keep-sites", str(args.keep_sites),
        ]  # fmt: skip
        if args.actors is not None:
            command += ["--actors", str(args.actors)]
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sampler = TreeSampler(proc.pid)
        out, err = proc.communicate()
        process_s = time.perf_counter() - started
        sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err}")
    data = json.loads(out.strip().splitlines()[-1])
    if backend == "ray":
        actors = str(args.actors) if args.actors else f"CPUs/{args.site_cpus:g}"
    else:
        actors = f"{args.threads} threads"
    return TreeRun(
        backend=backend,
        path=path,
        sites=sites,
        rounds=args.rounds,
        actors=actors,
        round_s=data["round_s"],
        simulate_s=data["simulate_s"],
        process_s=process_s,
        peak_tree_rss=sampler.peak_rss,
        peak_processes=sampler.peak_processes,
        driver_hwm_rss=data["hwm"],
    )


HEADERS = (
    "backend", "path", "sites", "rounds", "sites at once", "round s", "simulate() s",
    "process s", "peak tree MiB", "processes", "driver VmHWM MiB",
)  # fmt: skip


def rows(runs: Sequence[TreeRun]) -> list[list[str]]:
    """Table rows."""
    return [
        [
            r.backend, r.path, str(r.sites), str(r.rounds), r.actors,
            " / ".join(f"{s:.2f}" for s in r.round_s), f"{r.simulate_s:.2f}",
            f"{r.process_s:.2f}", f"{r.peak_tree_rss / MiB:.0f}", str(r.peak_processes),
            f"{r.driver_hwm_rss / MiB:.0f}",
        ]
        for r in runs
    ]  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.ray_sites",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sites", default="1000,10000", help="site counts (default 1000,10000)")
    parser.add_argument("--rounds", type=int, default=2, help="FedAvg rounds (default 2)")
    parser.add_argument("--paths", default="script", help="script and/or executor (default script)")
    parser.add_argument("--backends", default="ray,thread", help="default ray,thread")
    parser.add_argument("--threads", type=int, default=2, help="thread backend threads (2)")
    parser.add_argument("--site-cpus", type=float, default=1.0, help="Ray: CPUs per site (1)")
    parser.add_argument("--actors", type=int, default=None, help="Ray: actors (CPUs/site-cpus)")
    parser.add_argument("--keep-sites", type=int, default=0, help="Ray: kept sites (0)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="ray", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="script", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    args = parse_args(argv)
    if args.child:
        args.sites = int(args.sites)
        return child_run(args)
    machine = machine_info()
    runs = []
    for backend in [b for b in args.backends.split(",") if b]:
        for path in [p for p in args.paths.split(",") if p]:
            for sites in int_list(args.sites):
                print(f"  measuring {backend}, {path}, {sites} sites ...", file=sys.stderr)
                runs.append(measure(args, backend, path, sites))
    print("Fedra Ray backend benchmark (FedAvg on a 3x3 numpy model, final validation on)")
    print("\n".join(f"  {key}: {value}" for key, value in machine.items()))
    print(
        "round s: FedAvg rounds from summary.rounds; simulate() s: the whole call (for Ray "
        "with starting and stopping a local Ray instance); process s: the child process; "
        f"peak tree: summed RSS of the child and its descendants, sampled every {SAMPLE_S} s"
    )
    print(format_table(HEADERS, rows(runs)))
    if args.json is not None:
        payload = {"machine": machine, "runs": [asdict(r) for r in runs]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
