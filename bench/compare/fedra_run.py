"""Fedra's side of the comparison: the same workload as the peers, through Fedra's own API.

Run by ``bench.compare`` in a fresh process (so that its memory is measured alone)::

    .venv/bin/python -m bench.compare.fedra_run sim --sites 8 --rounds 5 --model 3x3 --workdir D
    .venv/bin/python -m bench.compare.fedra_run deploy --workdir D --models 3x3,100MB

``sim``: a :class:`fedra.job.FedJob` with FedAvg (final validation off) and the Client API
script ``bench/job_files/bench_train.py`` (``params + 1``) run in process by
``ScriptExecutor``, like the FLARE peer's script; the initial model is an ``.npz`` given to
the persistor; ``fedra.simulate(threads=...)`` runs it. Round seconds are the run summary's
(broadcast to aggregation and saving ``round-NNN.npz``).

``deploy``: a POC federation over gRPC + mutual TLS on free localhost ports, started as
``bench/federation.py`` does (server parent and two site parents, each in a session of its
own); "ready" is both sites listed by ``check_status("client")``. Each model is one job
submitted through :class:`fedra.admin.Session`; round seconds come from the server job's
log (``bench.federation.parse_rounds``) and the final model from the job's
``models/final.npz``. Prints the harness protocol lines (``BENCH-PID``, ``BENCH-PHASE``,
``BENCH-RESULT``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.compare.peers._common import Clock, emit, make_model, summarize
from bench.compare.peers._deploy import announce_pid, phase

if TYPE_CHECKING:
    from bench.federation import Federation

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "job_files" / "bench_train.py"
SITES = 2


def write_initial(path: Path, model: str) -> None:
    """The initial model as ``.npz`` (float32 zeros, the peers' shapes)."""
    from fedra.serverapp.runstore import write_npz

    with open(path, "wb") as handle:
        write_npz(handle, make_model(model))


def build_job(  # type: ignore[no-untyped-def]
    name: str, sites: int, rounds: int, npz: Path, script: Path = SCRIPT
):
    """FedAvg (final validation off) with the Client API script on every site."""
    from fedra.job import FedJob

    job = FedJob(name, min_clients=sites)
    job.add_workflow("FedAvg", num_rounds=rounds, min_clients=sites, final_validation=False)
    job.add_executor("ScriptExecutor", script=script.name, launch="in_process")
    job.add_file(script)
    job.set_persistor(initial_npz="initial.npz")
    job.add_file(npz, "initial.npz")
    return job


def run_sim(args: argparse.Namespace) -> None:
    """One simulation; the figures as a BENCH-RESULT line."""
    clock = Clock()
    from fedra.core import JobStatus
    from fedra.simulator import simulate

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    npz = workdir / "initial.npz"
    write_initial(npz, args.model)
    job = build_job("compare-sim", args.sites, args.rounds, npz, Path(args.script))
    import_s = clock.elapsed()
    summary = simulate(
        job, n_clients=args.sites, threads=args.threads, workspace=workdir / "ws",
        show_progress=False,
    )  # fmt: skip
    wall = clock.elapsed() - import_s
    if summary.status != JobStatus.FINISHED_COMPLETED or summary.final is None:
        raise SystemExit(f"the Fedra job failed: {summary.error}\n{summary.site_traceback}")
    rounds = [float(r["seconds"]) for r in summary.rounds if r["workflow"] == "FedAvg"]
    emit(
        {
            "system": "fedra",
            "wall_s": wall,
            "process_s": clock.elapsed(),
            "round_s": rounds,
            "final": summarize((summary.final.params or {}).values()),
        }
    )


def run_deploy(args: argparse.Namespace) -> None:
    """The POC federation: start to ready, then one job per model."""
    from bench.federation import Federation, parse_rounds
    from fedra.serverapp import load_npz

    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir / "poc", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    fed = Federation.prepare(workdir / "poc", SITES)
    result: dict[str, object] = {"system": "fedra", "jobs": {}}
    jobs: dict[str, object] = {}
    try:
        result["startup_s"] = start_and_wait(fed)
        for model in [m for m in args.models.split(",") if m]:
            rounds = args.rounds if model == "3x3" else args.big_rounds
            npz = workdir / f"initial-{model}.npz"
            write_initial(npz, model)
            folder = workdir / f"job-{model}"
            shutil.rmtree(folder, ignore_errors=True)
            build_job(f"compare-{model.lower()}", SITES, rounds, npz).export(folder)
            npz.unlink()
            phase(model)
            with fed.session() as session:
                started = time.perf_counter()
                job_id = session.submit_job(folder)
                deadline = started + 120 + rounds * 120
                while True:
                    record = session.get_job(job_id)
                    status = record.status.value
                    if record.status.is_final:
                        break
                    if time.perf_counter() > deadline:
                        session.abort_job(job_id)
                        raise SystemExit(f"Fedra job {model} did not finish in time ({status})")
                    time.sleep(0.05)
                wall = time.perf_counter() - started
            if status != "FINISHED:COMPLETED":
                raise SystemExit(f"Fedra job {model} ended {status}: {record}")
            job_ws = fed.layout.server / "store" / "jobs" / job_id / "workspace"
            logged = parse_rounds((job_ws / "server_job.log").read_text(errors="replace"))
            final = load_npz(job_ws / "models" / "final.npz")
            jobs[model] = {
                "round_s": [r.seconds for r in logged],
                "final": summarize(final.values()),
                "wall_s": wall,
            }
            del final
            with fed.session() as session:
                session.delete_job(job_id)
            shutil.rmtree(folder, ignore_errors=True)
        phase("end")
    finally:
        fed.stop_all()
    result["jobs"] = jobs
    emit(result)


def start_and_wait(fed: Federation) -> float:
    """Start the server parent and the site parents at once (as ``bench.federation`` does),
    announce the server's pid, and return the seconds until both sites are listed."""
    from bench.federation import port_open, wait_for

    started = time.perf_counter()
    server = fed.start("server")
    announce_pid("server", server.pid)
    for site in fed.layout.sites:
        fed.start(site)
    wait_for(lambda: port_open(fed.admin_port), 60, "the admin port")
    wanted = sorted(fed.layout.sites)
    with fed.session() as session:

        def connected() -> bool:
            sites = session.sites_status().sites
            return sorted(s.name for s in sites) == wanted

        wait_for(connected, 60, f"sites {wanted} to connect")
    return time.perf_counter() - started


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare.fedra_run")
    sub = parser.add_subparsers(dest="mode", required=True)
    sim = sub.add_parser("sim")
    sim.add_argument("--sites", type=int, required=True)
    sim.add_argument("--rounds", type=int, required=True)
    sim.add_argument("--model", required=True)
    sim.add_argument("--threads", type=int, default=2)
    sim.add_argument("--workdir", required=True)
    # Another site script (the harness's test gives one that computes the wrong thing).
    sim.add_argument("--script", default=str(SCRIPT), help=argparse.SUPPRESS)
    deploy = sub.add_parser("deploy")
    deploy.add_argument("--workdir", required=True)
    deploy.add_argument("--models", default="3x3,100MB")
    deploy.add_argument("--rounds", type=int, default=5)
    deploy.add_argument("--big-rounds", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.mode == "sim":
        run_sim(args)
    else:
        run_deploy(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
