"""Fedra against NVIDIA FLARE 2.9.0 and Flower 1.42.0 on the same FedAvg workload.

Run with ``make bench-compare`` or ``.venv/bin/python -m bench.compare`` (``--help``).
Every system runs the same job: FedAvg over float32 numpy arrays starting at zero, each site
adds 1 to every weight, so after R rounds every weight of the final model is exactly R;
each run's final model is checked, and a wrong one stops the harness with an error naming
the system and the row. Each system runs in a fresh process of its own (its own virtual
environment for the peers: ``bench.compare.venvs``), measured from outside
(``bench.compare.measure``); runs alternate between the systems (A B C A B C ...) and
medians are reported with Fedra/peer ratios (below 1: Fedra is faster or smaller).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.compare import limits
from bench.compare.measure import GiB, Run, run_driver
from bench.compare.report import Results, render_block, text_table, write_docs
from bench.compare.venvs import DEFAULT_ROOT, PEERS, ensure
from bench.machine import machine_info

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = Path(__file__).resolve().parent / "peers"
DOCS = REPO / "docs" / "benchmarks.md"
SYSTEMS = ("fedra", "nvflare", "flower")
MB = 10**6
MiB = 2**20
#: Model bytes and elements (float32) per model spec; the drivers make the same shapes.
MODEL_ELEMENTS = {"3x3": 9, "100MB": 100 * MB // 4, "1GB": 1000 * MB // 4}
SIM_SITES = (2, 8, 100, 1000)
ROW_ORDER = [f"sim-{n}" for n in SIM_SITES] + ["big-100MB", "big-1GB", "deploy", "limits"]
GROUPS = {
    "sim": [f"sim-{n}" for n in SIM_SITES],
    "big": ["big-100MB", "big-1GB"],
    "all": ROW_ORDER,
}


class WrongResult(RuntimeError):
    """A system computed the wrong final model."""


@dataclass(frozen=True)
class Settings:
    """What the command line chose."""

    systems: list[str]
    rows: list[str]
    reps: int
    rounds: int
    big_rounds: int
    threads: int
    timeout: float
    workdir: Path
    venvs: Path
    min_available: int
    fedra_script: str | None


def check_final(system: str, row: str, final: Any, rounds: int, model: str) -> None:
    """Every weight must equal ``rounds`` and the model keep its size; else WrongResult."""
    expected = MODEL_ELEMENTS[model]
    problem = ""
    if not isinstance(final, dict):
        problem = f"no final model reported ({final!r})"
    elif int(final.get("elements", -1)) != expected:
        problem = f"{final.get('elements')} weights instead of {expected}"
    else:
        lo, hi = float(final["min"]), float(final["max"])
        if abs(lo - rounds) > 1e-4 * rounds or abs(hi - rounds) > 1e-4 * rounds:
            problem = f"weights in [{lo}, {hi}] instead of all {rounds}.0"
    if problem:
        raise WrongResult(
            f"WRONG FINAL MODEL: system={system} row={row}: {problem} "
            f"(FedAvg, {rounds} rounds, each site adds 1 to every weight of a {model} model "
            "starting at 0)"
        )


def later(rounds: Sequence[float]) -> float:
    """Median seconds per round over rounds 2..N (round 1 alone when there is one)."""
    return statistics.median(list(rounds[1:]) or list(rounds))


# -- commands -----------------------------------------------------------------------------
def peer_env(home: Path) -> dict[str, str]:
    """The environment of a peer's driver: no Fedra venv, a scratch HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sim_command(
    cfg: Settings, system: str, sites: int, rounds: int, model: str, workdir: Path
) -> tuple[list[str], dict[str, str], Path]:
    """The driver command of one simulation run: (argv, env, cwd)."""
    common = ["--sites", str(sites), "--rounds", str(rounds), "--model", model,
              "--threads", str(cfg.threads)]  # fmt: skip
    if system == "fedra":
        command = [sys.executable, "-m", "bench.compare.fedra_run", "sim", *common,
                   "--workdir", str(workdir)]  # fmt: skip
        if cfg.fedra_script:
            command += ["--script", cfg.fedra_script]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return command, env, REPO
    python = str(cfg.venvs / system / "bin" / "python")
    script = PEERS_DIR / ("nvflare_sim.py" if system == "nvflare" else "flower_sim.py")
    command = [python, str(script), *common]
    if system == "nvflare":
        command += ["--workdir", str(workdir)]
    return command, peer_env(workdir / "home"), workdir


def deploy_command(
    cfg: Settings, system: str, rounds: int, big_rounds: int, workdir: Path
) -> tuple[list[str], dict[str, str], Path]:
    """The driver command of one deployment run: (argv, env, cwd)."""
    common = ["--workdir", str(workdir), "--models", "3x3,100MB", "--rounds", str(rounds),
              "--big-rounds", str(big_rounds)]  # fmt: skip
    if system == "fedra":
        command = [sys.executable, "-m", "bench.compare.fedra_run", "deploy", *common]
        return command, dict(os.environ, PYTHONUNBUFFERED="1"), REPO
    python = str(cfg.venvs / system / "bin" / "python")
    script = PEERS_DIR / ("nvflare_poc.py" if system == "nvflare" else "flower_deploy.py")
    return [python, str(script), *common], peer_env(workdir / "home"), workdir


# -- rows ---------------------------------------------------------------------------------
def alternate(
    cfg: Settings,
    results: Results,
    row: str,
    one_run: Callable[[str, int, Path], Run],
    record: Callable[[str, Run], None],
) -> None:
    """Run every system ``cfg.reps`` times, alternating; a system that fails stops there."""
    failed: set[str] = set()
    for rep in range(cfg.reps):
        for system in cfg.systems:
            if system in failed:
                continue
            workdir = cfg.workdir / row / f"{system}-{rep}"
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            progress(f"{row}: {system}, run {rep + 1}/{cfg.reps}")
            run = one_run(system, rep, workdir)
            if not run.ok:
                failed.add(system)
                results.error(row, system, f"{run.error} (log: {run.log})")
                progress(f"{row}: {system} gave no result: {run.error}")
                continue
            record(system, run)
            shutil.rmtree(workdir, ignore_errors=True)


def sim_row(cfg: Settings, results: Results, row: str, sites: int, model: str) -> None:
    """A simulator row: ``sites`` sites, ``model``."""
    big = model != "3x3"
    rounds = cfg.big_rounds if big else cfg.rounds
    title = f"simulator, {model}, {sites} sites"
    settings = (
        f"{rounds} FedAvg rounds, threads={cfg.threads} (Flower: {cfg.threads} Ray actors of "
        f"1 CPU), {runs(cfg.reps)} per system"
    )
    results.start_row(row, title, ROW_ORDER.index(row), now(), settings, cfg.systems)
    model_bytes = MODEL_ELEMENTS[model] * 4
    memcpy = results.data["limits"].get("memcpy")

    def one_run(system: str, rep: int, workdir: Path) -> Run:
        del rep
        command, env, cwd = sim_command(cfg, system, sites, rounds, model, workdir)
        return run_driver(command, workdir / "driver.log", cfg.timeout, env, cwd,
                          cfg.min_available)  # fmt: skip

    def record(system: str, run: Run) -> None:
        result = run.result or {}
        check_final(system, row, result.get("final"), rounds, model)
        per_round = later(result["round_s"])
        peak = run.peaks.get("tree", {}).get("run", 0)
        if not big:
            results.add(row, "run", "s", system, float(result["wall_s"]))
            results.add(row, "process", "s", system, run.process_s)
        results.add(row, "per round", "s", system, per_round)
        if big and memcpy:
            limit_s = model_bytes * sites * 2 / (memcpy * MB)
            results.add(row, "of memcpy limit", "%", system, 100 * limit_s / per_round)
        results.add(row, "peak, process tree", "MiB", system, peak / MiB)
        if big:
            results.add(row, "peak / model", "x", system, peak / model_bytes)

    alternate(cfg, results, row, one_run, record)


def deploy_row(cfg: Settings, results: Results) -> None:
    """The deployment row: start to ready; 3x3 and 100 MB jobs; server memory."""
    row = "deploy"
    big_rounds = cfg.big_rounds
    settings = (
        "server + 2 sites on localhost (Fedra: POC, gRPC + mutual TLS; FLARE: POC, mutual TLS; "
        "Flower: SuperLink + 2 SuperNodes, TLS server-side), "
        f"3x3: {cfg.rounds} rounds, 100MB: {big_rounds} rounds, {runs(cfg.reps)} per system"
    )
    results.start_row(
        row, "deployment, 2 sites", ROW_ORDER.index(row), now(), settings, cfg.systems
    )
    tls = results.data["limits"].get("TLS stream")
    model_bytes = MODEL_ELEMENTS["100MB"] * 4

    def one_run(system: str, rep: int, workdir: Path) -> Run:
        del rep
        command, env, cwd = deploy_command(cfg, system, cfg.rounds, big_rounds, workdir)
        timeout = cfg.timeout + 60 * (cfg.rounds + big_rounds)
        return run_driver(command, workdir / "driver.log", timeout, env, cwd, cfg.min_available)

    def record(system: str, run: Run) -> None:
        result = run.result or {}
        jobs = result.get("jobs", {})
        server = run.peaks.get("server", {})
        results.add(row, "start to all sites connected", "s", system, float(result["startup_s"]))
        for model, rounds in (("3x3", cfg.rounds), ("100MB", big_rounds)):
            job = jobs.get(model)
            if job is None:
                raise WrongResult(f"WRONG RESULT: system={system} row={row}: no {model} job")
            check_final(system, f"{row} ({model})", job.get("final"), rounds, model)
            per_round = later(job["round_s"])
            results.add(row, f"{model} per round", "s", system, per_round)
            if model == "100MB" and tls:
                limit_s = model_bytes * 2 * 2 / (tls * MB)
                results.add(
                    row, "100MB of TLS-stream limit", "%", system, 100 * limit_s / per_round
                )
            results.add(row, f"{model} server peak", "MiB", system, server.get(model, 0) / MiB)
            if model == "100MB":
                results.add(row, "100MB server peak / model", "x", system,
                            server.get(model, 0) / model_bytes)  # fmt: skip

    alternate(cfg, results, row, one_run, record)


def limits_row(cfg: Settings, results: Results, big: bool) -> None:
    """Memory copy bandwidth and loopback streams (TLS, plain TCP): the best of ``reps``.

    A limit is what the machine can do, so the best run counts (others on the machine only
    ever slow a run down).
    """
    row = "limits"
    size = 1000 * MB if big else 250 * MB
    settings = (
        f"numpy copy of {size // MB} MB (best of 3 copies); one Python ssl (TLS 1.3) stream and "
        f"one plain TCP stream of 500 MB over 127.0.0.1; {runs(cfg.reps)} (the table shows "
        "medians; the fractions of the limit use the best run)"
    )
    results.start_row(row, "physical limits", ROW_ORDER.index(row), now(), settings, ["fedra"])
    figures: dict[str, list[float]] = {"memcpy": [], "TLS stream": [], "TCP stream": []}
    for rep in range(cfg.reps):
        progress(f"limits, run {rep + 1}/{cfg.reps}")
        figures["memcpy"].append(limits.memcpy_mbps(size))
        figures["TLS stream"].append(limits.stream_mbps(500 * MB, tls=True))
        figures["TCP stream"].append(limits.stream_mbps(500 * MB, tls=False))
    for name, values in figures.items():
        for value in values:
            results.add(row, name, "MB/s", "fedra", value)
        results.data["limits"][name] = max(values)


# -- entry point --------------------------------------------------------------------------
def runs(count: int) -> str:
    """``1 run`` / ``3 runs``."""
    return f"{count} run" if count == 1 else f"{count} runs"


def now() -> str:
    """The time, UTC, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def progress(text: str) -> None:
    """One progress line on stderr."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_rows(text: str, skip_1gb: bool) -> list[str]:
    """Row names and groups (sim, big, all) -> row names in table order."""
    wanted: set[str] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in GROUPS:
            wanted.update(GROUPS[part])
        elif part in ROW_ORDER:
            wanted.add(part)
        else:
            raise SystemExit(f"unknown row {part!r}; rows: {', '.join(ROW_ORDER)}; groups: "
                             f"{', '.join(GROUPS)}")  # fmt: skip
    if skip_1gb:
        wanted.discard("big-1GB")
    return [r for r in ROW_ORDER if r in wanted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="systems to run (default fedra,nvflare,flower)"
    )
    parser.add_argument(
        "--rows",
        default="all",
        help=f"rows or groups, comma-separated: {', '.join(ROW_ORDER)}; "
        "groups sim, big, all (default all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 runs per system, 3 rounds (big models: 2), shorter timeout",
    )
    parser.add_argument("--reps", type=int, help="runs per system and row (default 3; quick 2)")
    parser.add_argument("--rounds", type=int, help="FedAvg rounds, 3x3 model (default 5; quick 3)")
    parser.add_argument(
        "--big-rounds", type=int, help="FedAvg rounds, 100 MB / 1 GB models (default 3; quick 2)"
    )
    parser.add_argument("--sites", help="site counts of the sim rows (default 2,8,100,1000)")
    parser.add_argument(
        "--threads", type=int, default=2, help="parallel sites in the simulators (default 2)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds before a run is stopped (default 600; quick 420)"
    )
    parser.add_argument(
        "--skip-1gb",
        action="store_true",
        help="leave out the 1 GB row (and copy 250 MB for the memcpy limit)",
    )
    parser.add_argument(
        "--min-available-gib",
        type=float,
        default=2.0,
        help="stop a run when the machine's available memory falls below this",
    )
    parser.add_argument(
        "--venvs",
        type=Path,
        default=DEFAULT_ROOT,
        help="where the peers' virtual environments live (default .bench-venvs)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="JSON of all results so far, merged across runs "
        "(default <venvs>/compare-results.json)",
    )
    parser.add_argument(
        "--docs", type=Path, default=DOCS, help="Markdown file whose compare markers get the table"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not write the docs")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: print the saved results and rewrite the docs table from them",
    )
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--fedra-script", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; print the table; write the docs. 2 on a wrong final model."""
    args = parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise SystemExit(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    systems = [s for s in SYSTEMS if s in systems]
    rows = parse_rows(args.rows, args.skip_1gb)
    sites = [int(x) for x in (args.sites or ",".join(map(str, SIM_SITES))).split(",") if x]
    bad_sites = [n for n in sites if n not in SIM_SITES]
    if bad_sites:
        raise SystemExit(f"--sites must be among {SIM_SITES}, got {bad_sites}")
    rows = [r for r in rows if not r.startswith("sim-") or int(r[4:]) in sites]
    results_path = args.results or args.venvs / "compare-results.json"
    if args.render_only:
        return show(Results.load(results_path), list(SYSTEMS), args, argv)
    with tempfile.TemporaryDirectory(prefix="fedra-compare-") as tmp:
        cfg = Settings(
            systems=systems,
            rows=rows,
            reps=args.reps or (2 if args.quick else 3),
            rounds=args.rounds or (3 if args.quick else 5),
            big_rounds=args.big_rounds or (2 if args.quick else 3),
            threads=args.threads,
            timeout=args.timeout or (420.0 if args.quick else 600.0),
            workdir=(args.workdir or Path(tmp)).resolve(),
            venvs=args.venvs.resolve(),
            min_available=int(args.min_available_gib * GiB),
            fedra_script=args.fedra_script,
        )
        for system in systems:
            if system in PEERS:
                ensure(system, cfg.venvs, cfg.venvs / f"{system}-install.log")
        results = Results.load(results_path)
        results.data["machine"] = machine_info()
        given = list(sys.argv[1:] if argv is None else argv)
        results.data["command"] = (
            "python -m bench.compare " + " ".join(given) if given else "make bench-compare"
        )
        try:
            if "limits" in rows:
                limits_row(cfg, results, big=not args.skip_1gb)
            for row in rows:
                if row.startswith("sim-"):
                    sim_row(cfg, results, row, int(row[4:]), "3x3")
                elif row.startswith("big-"):
                    sim_row(cfg, results, row, 2, row[4:])
                elif row == "deploy":
                    deploy_row(cfg, results)
        except WrongResult as exc:
            print(f"\n{exc}\n", file=sys.stderr, flush=True)
            return 2
        finally:
            results.save(results_path)
    return show(results, list(SYSTEMS) if len(systems) > 1 else systems, args, argv)


def show(
    results: Results, systems: list[str], args: argparse.Namespace, argv: Sequence[str] | None
) -> int:
    """Print the table; write the docs block unless ``--no-docs``."""
    headers, table = results.table(systems)
    print(text_table(headers, table), flush=True)
    if not args.no_docs:
        command = str(results.data.get("command", "?"))
        write_docs(args.docs, render_block(results, list(SYSTEMS), command))
        print(f"\nwritten to {args.docs}", flush=True)
    return 0
