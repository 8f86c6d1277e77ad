"""Cost of the robust and private aggregation rules against plain weighted averaging.

Run with ``.venv/bin/python -m bench.robust [--sites 8] [--values 1000000] [--repeats 5]``.
For each aggregator of :data:`fedra.aggregators.AGGREGATORS` that works on plain updates, it
folds the results of one round (``--sites`` model updates of ``--values`` float32 values, a
DIFF each, seeded) and takes the aggregate, ``--repeats`` times, and prints the median time
and its ratio to ``weighted``, and the peak of Python-tracked memory during the round (numpy
allocations) as a multiple of one update. None of these rules changes what travels: every
site still sends one update, so message size is 1.0x plain FedAvg for all of them.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from bench.machine import machine_info
from fedra.aggregators import make_aggregator
from fedra.aggregators.robust import start_round
from fedra.core import FLModel, ParamsType

RULES: dict[str, dict[str, object]] = {
    "weighted": {},
    "median": {},
    "trimmed_mean": {"trim_ratio": 0.1},
    "krum": {"num_byzantine": 1, "multi": 2},
    "dp_gaussian": {"clip_norm": 1.0, "noise_multiplier": 1.0, "seed": 0},
}


def one_round(rule: str, updates: list[FLModel], sent: FLModel) -> tuple[float, int]:
    """Seconds to fold ``updates`` and take the aggregate; peak numpy bytes meanwhile."""
    aggregator = make_aggregator(rule, **RULES[rule])  # type: ignore[arg-type]
    start_round(aggregator, sent)
    tracemalloc.start()
    begin = time.perf_counter()
    for update in updates:
        aggregator.accept(update)
    aggregator.result()
    seconds = time.perf_counter() - begin
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    """Print one line per rule."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sent = FLModel(params={"w": np.zeros(args.values, dtype=np.float32)})
    updates = [
        FLModel(
            params={"w": (rng.standard_normal(args.values) * 0.01).astype(np.float32)},
            params_type=ParamsType.DIFF,
            meta={"num_samples": i + 1},
        )
        for i in range(args.sites)
    ]
    size = updates[0].nbytes()
    print(f"machine: {machine_info()}")
    print(f"{args.sites} sites, updates of {args.values:,} float32 ({size / 2**20:.1f} MiB)")
    print(f"{'rule':<14}{'s/round':>10}{'vs weighted':>13}{'peak / update':>15}")
    base = None
    for rule in RULES:
        runs = [one_round(rule, updates, sent) for _ in range(args.repeats)]
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        base = base or seconds
        print(f"{rule:<14}{seconds:>10.4f}{seconds / base:>12.1f}x{peak / size:>14.1f}x")


if __name__ == "__main__":
    main()
