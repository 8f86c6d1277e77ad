"""Cost of secure aggregation (SecAggFedAvg) against plain FedAvg: time and bytes per round.

Run with ``.venv/bin/python -m bench.secagg`` (``--help`` for the sizes). Each configuration
runs the real workflow against ``--sites`` in-process sites through the real TaskBoard; every
task and every result is encoded with the wire codec (``fedra.wire.encode_model``) and decoded
on the other side, so the bytes counted are the bytes a networked federation sends (frame
headers included, before TLS). Sites run one after the other in the benchmark's thread, so
the time of each party can be told apart:

* ``site ms``: one site's own work per round (its executor: key agreement, Shamir sharing,
  share encryption and decryption, masking; for FedAvg just the "training", ``params + 0.01``),
  mean over sites;
* ``server ms``: the workflow's own work per round (routing, summing, unmasking, applying the
  update), i.e. the round's wall time minus the sites' work and the codec;
* ``codec ms``: encoding and decoding every message of the round (both directions, all sites);
* ``down KiB`` / ``up KiB``: bytes per site per round, server to site and site to server.

In a real federation the sites work in parallel, so a round takes about
``server + slowest site + transfers``. Rounds 2..N are timed (round 1 includes start-up);
the median is taken, then the median over ``--repeat`` runs (run one after the other for
every configuration, so a burst of load on a shared machine hits them all).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.machine import machine_info
from fedra.client import Executor, SecAggClient, SiteContext, SiteRunner
from fedra.core import FLModel, Task, WorkflowContext
from fedra.serverapp import RunStore, TaskBoard
from fedra.wire import decode_model, encode_model
from fedra.workflows import FedAvg, SecAggFedAvg

#: The configurations compared: plain FedAvg, and SecAggFedAvg with its 64-bit default and a
#: 32-bit variant (half the upload; coarser step: clip / 32767, weights up to 64).
CONFIGS: dict[str, dict[str, object] | None] = {
    "FedAvg": None,
    "SecAgg-64": {"clip": 1.0},
    "SecAgg-32": {"clip": 1.0, "modulus_bits": 32, "bits": 16, "max_weight": 64},
}


class PlusOne(Executor):
    """ "Training": every weight + 0.01, ``num_samples`` = site index + 1."""

    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        params = {n: v + np.float32(0.01) for n, v in (data.params or {}).items()}
        return FLModel(params=params, meta={"num_samples": ctx.site_index + 1})


@dataclass
class Counters:
    down: dict[str, int] = field(default_factory=dict)
    up: dict[str, int] = field(default_factory=dict)
    site_s: dict[str, float] = field(default_factory=dict)
    codec_s: float = 0.0

    def reset(self) -> None:
        self.down.clear()
        self.up.clear()
        self.site_s.clear()
        self.codec_s = 0.0


class CountingFederation:
    """Sites answering synchronously, every message through the wire codec, bytes counted."""

    def __init__(self, root: Path, sites: int, secagg: bool) -> None:
        self.counters = Counters()
        self.runners = {}
        for index in range(sites):
            name = f"site-{index + 1}"
            executor: Executor = SecAggClient(PlusOne()) if secagg else PlusOne()
            ctx = SiteContext(name, index, sites, workdir=root / name)
            self.runners[name] = SiteRunner(ctx, [(("*",), executor)])
        self.board = TaskBoard(list(self.runners), self._deliver, job_id="bench")
        self.store = RunStore(root)
        self.round_times: list[float] = []
        self.per_round: list[Counters] = []

    def _deliver(self, task: Task) -> None:
        c = self.counters
        start = time.perf_counter()
        frame = encode_model(task.data)
        received = decode_model(frame)
        c.codec_s += time.perf_counter() - start
        c.down[task.site] = c.down.get(task.site, 0) + len(frame)
        start = time.perf_counter()
        result = self.runners[task.site].handle(Task(task.name, received, task.site, task.id))
        c.site_s[task.site] = c.site_s.get(task.site, 0.0) + time.perf_counter() - start
        if result.data is not None:
            start = time.perf_counter()
            frame = encode_model(result.data)
            result.data = decode_model(frame)
            c.codec_s += time.perf_counter() - start
            c.up[task.site] = c.up.get(task.site, 0) + len(frame)
        if result.error:
            raise RuntimeError(result.error)
        self.board.submit(result)

    def round_started(self, workflow: str, round_num: int, total: int, sites: int) -> None:
        self.counters.reset()
        self._start = time.perf_counter()

    def result_received(self, workflow: str, round_num: int, site: str) -> None:
        pass

    def round_finished(self, workflow: str, round_num: int, metrics: object) -> None:
        self.round_times.append(time.perf_counter() - self._start)
        c = self.counters
        self.per_round.append(Counters(dict(c.down), dict(c.up), dict(c.site_s), c.codec_s))


@dataclass
class Row:
    workflow: str
    sites: int
    params: int
    round_ms: float
    site_ms: float
    server_ms: float
    codec_ms: float
    down_kib: float
    up_kib: float


def measure(config: str, sites: int, params: int, rounds: int) -> Row:
    """Median figures over rounds 2..``rounds`` of one configuration."""
    secagg_args = CONFIGS[config]
    secagg = secagg_args is not None
    with tempfile.TemporaryDirectory(prefix="bench-secagg-") as tmp:
        fed = CountingFederation(Path(tmp), sites, secagg)
        common = {
            "num_rounds": rounds,
            "min_clients": sites,
            "wait_time_after_min_received": 0.0,
            "final_validation": False,
        }
        workflow = (
            SecAggFedAvg(**secagg_args, **common)  # type: ignore[arg-type]
            if secagg_args is not None
            else FedAvg(**common)  # type: ignore[arg-type]
        )
        ctx = WorkflowContext(
            fleet=fed.board, store=fed.store, events=fed, checkpoint=lambda snapshot: None
        )
        rng = np.random.default_rng(0)
        half = params // 2
        initial = {
            "w1": rng.normal(size=half).astype(np.float32),
            "w2": rng.normal(size=params - half).astype(np.float32),
        }
        ctx.shared["global"] = FLModel(params=initial)
        workflow.run(ctx)
    timed = list(zip(fed.round_times, fed.per_round, strict=True))[1:]

    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    return Row(
        config,
        sites,
        params,
        round_ms=1e3 * med([t for t, _ in timed]),
        site_ms=1e3 * med([statistics.mean(c.site_s.values()) for _, c in timed]),
        server_ms=1e3 * med([t - sum(c.site_s.values()) - c.codec_s for t, c in timed]),
        codec_ms=1e3 * med([c.codec_s for _, c in timed]),
        down_kib=med([statistics.mean(c.down.values()) for _, c in timed]) / 1024,
        up_kib=med([statistics.mean(c.up.values()) for _, c in timed]) / 1024,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--params", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per run (1st not timed)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    options = parser.parse_args(argv)
    for key, value in machine_info().items():
        print(f"  {key}: {value}")
    print(
        f"\nper round: median of rounds 2..{options.rounds}, then median of {options.repeat} runs; "
        "sites run one after another in one thread; bytes per site = encoded frames"
    )
    header = (
        f"{'workflow':<13} {'sites':>5} {'params':>9} {'round ms':>9} {'site ms':>8} "
        f"{'server ms':>9} {'codec ms':>8} {'down KiB':>9} {'up KiB':>8}"
    )
    print(header)
    print("-" * len(header))
    rows: dict[tuple[int, int, str], list[Row]] = {}
    for _ in range(options.repeat):  # repeats outermost: a burst of load hits every config
        for params in options.params:
            for sites in options.sites:
                for name in CONFIGS:
                    row = measure(name, sites, params, options.rounds)
                    rows.setdefault((params, sites, name), []).append(row)
    for runs in rows.values():
        r = runs[0]
        fig = {
            key: statistics.median(getattr(run, key) for run in runs)
            for key in ("round_ms", "site_ms", "server_ms", "codec_ms", "down_kib", "up_kib")
        }
        print(
            f"{r.workflow:<13} {r.sites:>5} {r.params:>9} {fig['round_ms']:>9.1f} "
            f"{fig['site_ms']:>8.2f} {fig['server_ms']:>9.1f} {fig['codec_ms']:>8.1f} "
            f"{fig['down_kib']:>9.1f} {fig['up_kib']:>8.1f}"
        )


if __name__ == "__main__":
    main()
