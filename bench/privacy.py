"""Cost of server-side result filters and central DP, relative to plain FedAvg.

Run with ``.venv/bin/python -m bench.privacy`` (``--help`` for the sizes). Two measurements on
the same model (float32 arrays of ``--mb`` MB in all) and ``--sites`` sites:

* ``aggregate``: one round's server work alone, in this process: folding the sites' results
  (full params, each ``global + 1``) into the aggregator and producing the new global model,
  for plain FedAvg (``weighted``), FedAvg behind the server's ``result_filters``
  [RejectNonFinite, ClipNorm] (run on every result as FilteredFleet does), and ``dp_gaussian``
  (clip, mean, noise). Median of ``--repeat`` rounds.
* ``simulate``: seconds per FedAvg round of a whole simulator run (the executor path of
  bench/simulator.py: a custom Executor returning ``params + 1``), rounds 2..N, median, for
  the same three configurations.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import machine_info
from bench.simulator import build_job, run_job, write_initial_npz
from fedra.aggregators import apply_update, make_aggregator, start_round
from fedra.core import FLModel, Params, readonly
from fedra.filters import ClipNorm, FilterChain, FilterContext, RejectNonFinite

CLIP = 1e6  # large enough that "+1 everywhere" is not clipped: the cost, not the effect
SIGMA = 1.0
CONFIGS = ("plain", "result_filters", "dp_gaussian")


def _model(total_mb: float, arrays: int = 4) -> Params:
    count = max(1, int(total_mb * 2**20) // 4 // arrays)
    rng = np.random.default_rng(0)
    return {f"layer{i}": rng.normal(size=count).astype(np.float32) for i in range(arrays)}


def aggregate_round(config: str, global_params: Params, results: list[FLModel]) -> Params:
    """One round's server work for ``config``: filter, aggregate, apply."""
    sent = FLModel(params=readonly(global_params), current_round=1)
    if config == "dp_gaussian":
        aggregator = make_aggregator("dp_gaussian", clip_norm=CLIP, noise_multiplier=SIGMA)
    else:
        aggregator = make_aggregator("weighted")
    start_round(aggregator, sent)
    chain = FilterChain([RejectNonFinite(), ClipNorm(CLIP)])
    rng = np.random.default_rng(0)
    for i, result in enumerate(results):
        kept = result
        if config == "result_filters":
            ctx = FilterContext(f"site-{i}", "train", "task_result", 1, rng, reference=sent.params)
            kept = chain(result, ctx)
        aggregator.accept(kept)
    return apply_update(global_params, aggregator.result())


def time_aggregate(total_mb: float, sites: int, repeat: int) -> dict[str, float]:
    """Median seconds of one round's server work per configuration."""
    global_params = _model(total_mb)
    results = [
        FLModel(params={k: v + 1 for k, v in global_params.items()}, meta={"num_samples": i + 1})
        for i in range(sites)
    ]
    out: dict[str, float] = {}
    for config in CONFIGS:
        aggregate_round(config, global_params, results)  # warm-up
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            aggregate_round(config, global_params, results)
            times.append(time.perf_counter() - started)
        out[config] = statistics.median(times)
    return out


def time_simulate(total_mb: float, sites: int, rounds: int, workdir: Path) -> dict[str, float]:
    """Median seconds per FedAvg round (rounds 2..N) of a simulator run per configuration."""
    npz = workdir / "initial.npz"
    write_initial_npz(npz, int(total_mb * 2**20), arrays=4)
    setups: dict[str, Callable[[Any], None]] = {
        "plain": lambda job: None,
        "result_filters": lambda job: job.add_server_filter("RejectNonFinite").add_server_filter(
            "ClipNorm", max_norm=CLIP
        ),
        "dp_gaussian": lambda job: job.workflows[0]["args"].update(
            aggregator="dp_gaussian",
            aggregator_args={"clip_norm": CLIP, "noise_multiplier": SIGMA},
        ),
    }
    out: dict[str, float] = {}
    for config, setup in setups.items():
        job = build_job("executor", sites, rounds, final_validation=False, npz=npz)
        setup(job)
        round_s, _wall = run_job(job, sites, workdir / f"ws-{config}")
        out[config] = statistics.median(round_s[1:] or round_s)
    return out


def _table(title: str, figures: dict[str, float]) -> str:
    base = figures["plain"]
    lines = [title, f"  {'configuration':<16} {'s/round':>10} {'vs plain':>9}"]
    for config, seconds in figures.items():
        lines.append(f"  {config:<16} {seconds:>10.4f} {seconds / base:>8.2f}x")
    return "\n".join(lines)


def main() -> None:
    """Measure and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="model size in MB (float32)")
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6, help="simulator rounds per run")
    parser.add_argument("--repeat", type=int, default=7, help="aggregation rounds timed")
    args = parser.parse_args()
    info = machine_info()
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"model {args.mb} MB float32, {args.sites} sites")
    print(
        _table(
            "server work per round (aggregate)", time_aggregate(args.mb, args.sites, args.repeat)
        )
    )
    with tempfile.TemporaryDirectory(prefix="fedra-bench-privacy-") as tmp:
        figures = time_simulate(args.mb, args.sites, args.rounds, Path(tmp))
    print(_table("simulator seconds per FedAvg round (executor path, threads=2)", figures))


if __name__ == "__main__":
    main()
