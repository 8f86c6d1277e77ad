"""Compare FedAvg, FedProx, FedAdam and SCAFFOLD on label-skewed digits, under one seed.

Each algorithm runs the same job (this folder: the same sites, data split, initial model and
site script) in the simulator; only the server workflow differs. Writes to ``--out``:

- ``accuracy.png``: test accuracy (and loss) of the global model after each round;
- ``results.md``: final accuracy and loss, wall time, and bytes per round relative to FedAvg;
- ``results.json``: the same numbers and the per-round curves;
- ``jobs/<algorithm>/``: the job folder each run used (``fedra simulate`` runs it alone);
- ``runs/<algorithm>/``: the simulator workspace of each run (models, summary.json).

Run from the repository root::

    python examples/noniid-digits/compare.py            # ~20 s on 2 cores
    python examples/noniid-digits/compare.py --alpha 100 --out /tmp/iid   # near-IID split
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import fedra
from fedra.core import JobStatus

HERE = Path(__file__).resolve().parent
CUSTOM = HERE / "app" / "custom"
#: Git-ignored (``/workspace/`` in the repository's .gitignore).
DEFAULT_OUT = HERE.parent.parent / "workspace" / "noniid-digits"

#: Algorithm key -> (workflow class, label in the plot and table).
ALGORITHMS: dict[str, tuple[str, str]] = {
    "fedavg": ("FedAvg", "FedAvg"),
    "fedprox": ("FedProx", "FedProx"),
    "fedadam": ("FedAdam", "FedAdam"),
    "scaffold": ("Scaffold", "SCAFFOLD"),
}


@dataclass
class Result:
    """One algorithm's run."""

    key: str
    label: str
    seconds: float  # wall time of the simulation (median over --repeat runs)
    cpu_seconds: float  # CPU time of this process during it (server and site threads)
    accuracy: list[float] = field(default_factory=list)  # index r: after round r (0: initial)
    loss: list[float] = field(default_factory=list)
    bytes_per_round: float = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=0.1, help="Dirichlet label skew")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--local-steps", type=int, default=50, help="local SGD steps (K)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1, help="local learning rate")
    parser.add_argument("--mu", type=float, default=0.01, help="FedProx proximal weight")
    parser.add_argument("--adam-lr", type=float, default=0.1, help="FedAdam server_lr")
    parser.add_argument("--threads", type=int, default=2, help="simulator worker threads")
    parser.add_argument(
        "--target", type=float, default=0.9, help="accuracy for the 'rounds to' column"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per algorithm; wall time is their median"
    )
    parser.add_argument(
        "--algorithms",
        default=",".join(ALGORITHMS),
        help=f"comma-separated, from {','.join(ALGORITHMS)}",
    )
    args = parser.parse_args(argv)
    args.algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = [a for a in args.algorithms if a not in ALGORITHMS]
    if unknown or not args.algorithms:
        parser.error(f"unknown algorithms {unknown}; choose from {list(ALGORITHMS)}")
    if args.rounds < 1 or args.sites < 2 or args.repeat < 1:
        parser.error("need --rounds >= 1, --sites >= 2 and --repeat >= 1")
    return args


def workflow_args(key: str, args: argparse.Namespace) -> dict[str, Any]:
    """The server workflow's arguments for algorithm ``key``."""
    common: dict[str, Any] = {"num_rounds": args.rounds, "min_clients": args.sites}
    if key == "fedprox":
        common["mu"] = args.mu
    elif key == "fedadam":
        common["server_lr"] = args.adam_lr
    return common


def export_job(key: str, args: argparse.Namespace, folder: Path) -> Path:
    """This folder's job with the workflow of ``key`` and the sites' settings of ``args``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(HERE / "meta.json", folder / "meta.json")
    shutil.copytree(HERE / "app", folder / "app", ignore=shutil.ignore_patterns("__pycache__"))
    config = folder / "app" / "config"
    server = json.loads((config / "config_fed_server.json").read_text())
    server["workflows"] = [{"class": ALGORITHMS[key][0], "args": workflow_args(key, args)}]
    (config / "config_fed_server.json").write_text(json.dumps(server, indent=2) + "\n")
    client = json.loads((config / "config_fed_client.json").read_text())
    client["executors"][0]["args"]["args"] = [
        *("--alpha", str(args.alpha), "--seed", str(args.seed)),
        *("--local-steps", str(args.local_steps), "--batch-size", str(args.batch_size)),
        *("--lr", str(args.lr)),
    ]
    (config / "config_fed_client.json").write_text(json.dumps(client, indent=2) + "\n")
    return folder


def simulate_once(key: str, args: argparse.Namespace) -> tuple[float, float]:
    """Run algorithm ``key`` once; (wall seconds, CPU seconds of this process)."""
    cpu = time.process_time()
    summary = fedra.simulate(
        args.out / "jobs" / key,
        n_clients=args.sites,
        threads=args.threads,
        workspace=args.out / "runs" / key,
        show_progress=False,
    )
    if summary.status != JobStatus.FINISHED_COMPLETED:
        raise SystemExit(f"{key}: {summary.error}\n{summary.site_traceback or ''}")
    return summary.seconds, time.process_time() - cpu


def evaluate_run(key: str, args: argparse.Namespace, wall: float, cpu: float) -> Result:
    """Test accuracy and loss of the global model after every round, and bytes per round."""
    from digits_noniid import evaluate, initial_params, test_data

    workspace = args.out / "runs" / key
    result = Result(key, ALGORITHMS[key][1], wall, cpu)
    x_test, y_test = test_data()
    models = [initial_params()]
    for r in range(1, args.rounds + 1):
        with np.load(workspace / "models" / f"round-{r:03d}.npz", allow_pickle=False) as saved:
            models.append({name: saved[name] for name in saved.files})
    for params in models:
        accuracy, loss = evaluate(params, x_test, y_test)
        result.accuracy.append(accuracy)
        result.loss.append(loss)
    # Every site trains every round and receives/sends messages of one size: the round's
    # (weighted mean) sizes times the number of sites.
    summary = json.loads((workspace / "summary.json").read_text())
    rounds = [r for r in summary["rounds"] if r["workflow"] == ALGORITHMS[key][0]]
    per_round = [
        args.sites * (float(r["metrics"]["task_bytes"]) + float(r["metrics"]["result_bytes"]))
        for r in rounds
    ]
    result.bytes_per_round = float(np.mean(per_round))
    return result


def warm_up(args: argparse.Namespace) -> None:
    """Load the data and run one short simulation, so no timed run pays for first imports."""
    from digits_noniid import partition, test_data

    test_data()
    partition(args.sites, args.alpha, args.seed)
    quick = argparse.Namespace(**{**vars(args), "rounds": 1, "local_steps": 1})
    folder = args.out / "warm-up"
    try:
        fedra.simulate(
            export_job("fedavg", quick, folder / "job"),
            n_clients=args.sites,
            threads=args.threads,
            workspace=folder / "run",
            show_progress=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def plot(results: list[Result], args: argparse.Namespace, path: Path) -> None:
    """Accuracy and loss per round, one line per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for res in results:
        rounds = range(len(res.accuracy))
        acc_ax.plot(rounds, res.accuracy, marker=".", label=res.label)
        loss_ax.plot(rounds, res.loss, marker=".", label=res.label)
    acc_ax.set(xlabel="round", ylabel="test accuracy", ylim=(0, 1))
    loss_ax.set(xlabel="round", ylabel="test cross-entropy", yscale="log")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"digits, {args.sites} sites, Dirichlet alpha={args.alpha}, "
        f"K={args.local_steps} local steps, seed {args.seed}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(results: list[Result], args: argparse.Namespace, command: str) -> str:
    """The markdown report."""
    base = next((r for r in results if r.key == "fedavg"), results[0])
    lines = [
        f"# Non-IID digits: {', '.join(r.label for r in results)}",
        "",
        f"Command: `{command}`",
        "",
        f"{args.sites} sites, Dirichlet label skew alpha={args.alpha}, seed {args.seed}, "
        f"{args.rounds} rounds, {args.local_steps} local SGD steps of batch {args.batch_size} "
        f"at lr {args.lr}; FedProx mu={args.mu}; FedAdam server_lr={args.adam_lr}. Accuracy "
        "and loss of the final global model on the shared test set; times are the median of "
        f"{args.repeat} run(s) (CPU time: the simulator's process, server and sites); bytes are "
        "the encoded task and answer frames of all sites in a round; ratios are relative to "
        f"{base.label}.",
        "",
        f"| algorithm | final accuracy | final loss | rounds to {args.target:.0%} "
        "| wall time (s) | CPU time (s) | CPU ratio | bytes per round | bytes ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        reached = next((i for i, a in enumerate(r.accuracy) if a >= args.target), None)
        lines.append(
            f"| {r.label} | {r.accuracy[-1]:.4f} | {r.loss[-1]:.4f} "
            f"| {'-' if reached is None else reached} "
            f"| {r.seconds:.2f} | {r.cpu_seconds:.2f} | {r.cpu_seconds / base.cpu_seconds:.2f} "
            f"| {r.bytes_per_round:,.0f} | {r.bytes_per_round / base.bytes_per_round:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print the table."""
    args = parse_args(argv)
    if str(CUSTOM) not in sys.path:
        sys.path.insert(0, str(CUSTOM))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python examples/noniid-digits/compare.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    started = time.monotonic()
    warm_up(args)
    for key in args.algorithms:
        export_job(key, args, args.out / "jobs" / key)
    times: dict[str, list[tuple[float, float]]] = {key: [] for key in args.algorithms}
    for _ in range(args.repeat):  # interleaved, so load from elsewhere hits all alike
        for key in args.algorithms:  # the same seed: every repeat gives the same models
            times[key].append(simulate_once(key, args))
    results = []
    for key in args.algorithms:
        wall = float(np.median([t[0] for t in times[key]]))
        cpu = float(np.median([t[1] for t in times[key]]))
        results.append(evaluate_run(key, args, wall, cpu))
        last = results[-1]
        print(
            f"{last.label:9s} accuracy {last.accuracy[-1]:.4f}  loss {last.loss[-1]:.4f}  "
            f"wall {last.seconds:.2f} s  cpu {last.cpu_seconds:.2f} s",
            flush=True,
        )
    plot(results, args, args.out / "accuracy.png")
    report = table(results, args, command.strip())
    (args.out / "results.md").write_text(report, encoding="utf-8")
    curves = {
        r.key: {
            "label": r.label,
            "accuracy": r.accuracy,
            "loss": r.loss,
            "seconds": r.seconds,
            "cpu_seconds": r.cpu_seconds,
            "bytes_per_round": r.bytes_per_round,
        }
        for r in results
    }
    (args.out / "results.json").write_text(json.dumps(curves, indent=2) + "\n", encoding="utf-8")
    print()
    print(report)
    print(f"wrote {args.out / 'accuracy.png'} and results.md in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
