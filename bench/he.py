"""Cost of homomorphic encryption: FedAvg with CKKS-encrypted models against plain FedAvg.

Run with ``.venv/bin/python -m bench.he`` (``--help`` for the options). Two parts:

* **Steps** (median of ``--repeats``): what one site and the server each do per round with a
  model of ``--size`` float32 values: encrypt (HEEncrypt's work), fold one encrypted result
  into the weighted sum (he_weighted's work per site), the same plus serializing the encrypted
  sum (its work per round with one site), decrypt (HEDecrypt's work); the largest error of
  the decrypted average; and the bytes on the wire (``fedra.wire.encode_model``) of a plain
  result, an encrypted result and the encrypted global model.
* **Simulator**: the same FedAvg job run twice by ``fedra.simulate(threads=1)``, plain and
  with ``HEDecrypt``/``HEEncrypt`` and ``aggregator: he_weighted`` (keys from
  ``fedra.he.write_kits``). A site's "training" adds 1 to every weight (bench/job_files/
  bench_executor.py). Seconds per round: median of rounds 2..N from the run summary (a round
  includes every site's filters, the server's aggregation and saving the round's model).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import machine_info
from fedra.core import FLModel, JobStatus
from fedra.he import (
    HEKeys,
    decrypt_params,
    encrypt_params,
    load_context,
    write_kits,
)
from fedra.he.keys import SERVER_CONTEXT_FILE, SITE_CONTEXT_FILE
from fedra.job import FedJob
from fedra.serverapp.runstore import write_npz
from fedra.simulator import simulate
from fedra.wire import encode_model

JOB_FILES = Path(__file__).resolve().parent / "job_files"
MiB = 2**20


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def steps(size: int, repeats: int, folder: Path) -> dict[str, float]:
    """Per-step seconds and wire bytes for one model of ``size`` float32 values."""
    from fedra.aggregators import HEWeightedAggregator

    write_kits(folder, ["site-1"], HEKeys.generate())
    site = load_context(folder / "site-1" / "startup" / SITE_CONTEXT_FILE, secret=True)
    server = load_context(folder / "server" / "startup" / SERVER_CONTEXT_FILE, secret=False)
    params = {"w": np.random.default_rng(0).normal(size=size).astype(np.float32)}
    encrypted = encrypt_params(params, site)
    result = FLModel(params=encrypted, meta={"num_samples": 10})

    def fold() -> HEWeightedAggregator:
        aggregator = HEWeightedAggregator(context=server)
        aggregator.accept(result)
        return aggregator

    folded = fold()
    global_model = folded.result()
    assert global_model.params is not None
    back = decrypt_params(global_model.params, site)["w"].astype(np.float64)
    figures = {
        "max abs error": float(np.abs(back - params["w"]).max()),
        "encrypt s": _median_time(lambda: encrypt_params(params, site), repeats),
        "fold one result s": _median_time(fold, repeats),
        "fold + result s": _median_time(lambda: fold().result(), repeats),
        "decrypt s": _median_time(lambda: decrypt_params(global_model.params or {}, site), repeats),
        "plain result bytes": len(encode_model(FLModel(params=params, meta={"num_samples": 10}))),
        "encrypted result bytes": len(encode_model(result)),
        "encrypted global bytes": len(encode_model(FLModel(params=global_model.params))),
    }
    return figures


def _job(size: int, sites: int, rounds: int, he: bool, folder: Path) -> FedJob:
    npz = folder / "initial.npz"
    with open(npz, "wb") as handle:
        write_npz(handle, {"weights": np.zeros(size, dtype=np.float32)})
    job = FedJob("bench-he" if he else "bench-plain", min_clients=sites)
    args: dict[str, Any] = {"aggregator": "he_weighted"} if he else {}
    job.add_workflow("FedAvg", num_rounds=rounds, min_clients=sites, **args)
    job.add_executor(custom="bench_executor.AddOneExecutor")
    job.add_file(JOB_FILES / "bench_executor.py")
    job.set_persistor(initial_npz="initial.npz")
    job.add_file(npz, "initial.npz")
    if he:
        job.add_filter("HEDecrypt", direction="task_data")
        job.add_filter("HEEncrypt", direction="task_result")
    return job


def simulated(size: int, sites: int, rounds: int, he: bool, folder: Path) -> dict[str, float]:
    """Median seconds per round (rounds 2..N) and wall seconds of one simulate() call."""
    kits = None
    if he:
        kits = folder / "kits"
        write_kits(kits, [f"site-{i}" for i in range(1, sites + 1)])
    job = _job(size, sites, rounds, he, folder)
    start = time.perf_counter()
    summary = simulate(
        job, n_clients=sites, workspace=folder / "ws", show_progress=False, kits=kits
    )
    wall = time.perf_counter() - start
    if summary.status != JobStatus.FINISHED_COMPLETED:
        raise RuntimeError(f"benchmark run failed: {summary.error} {summary.site_traceback}")
    seconds = [r["seconds"] for r in summary.rounds if r["workflow"] == "FedAvg"]
    model_bytes = (folder / "ws" / "models" / "final.npz").stat().st_size
    return {
        "s/round": statistics.median(seconds[1:] or seconds),
        "wall s": wall,
        "final.npz bytes": model_bytes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="model size (float32 values)")
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each step")
    args = parser.parse_args(argv)
    for key, value in machine_info().items():
        print(f"{key}: {value}")
    print(f"model: {args.size} float32 values ({args.size * 4 / MiB:.2f} MiB); CKKS N=8192,")
    print("moduli 60-40-40-60 bits, scale 2^40 (fedra.he.CKKSParams defaults)\n")
    with tempfile.TemporaryDirectory() as tmp:
        figures = steps(args.size, args.repeats, Path(tmp) / "steps")
    plain_bytes = figures["plain result bytes"]
    print(f"steps (median of {args.repeats}):")
    for key, value in figures.items():
        if key == "max abs error":
            print(f"  {key:<24} {value:8.1e}     (values ~ N(0, 1), one site, after aggregation)")
        elif key.endswith("bytes"):
            print(f"  {key:<24} {value / MiB:8.2f} MiB  ({value / plain_bytes:5.1f}x plain)")
        else:
            print(f"  {key:<24} {value * 1000:8.1f} ms")
    print(f"\nsimulator: {args.sites} sites, {args.rounds} rounds, threads=1")
    rows = {}
    for he in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            rows["he" if he else "plain"] = simulated(
                args.size, args.sites, args.rounds, he, Path(tmp)
            )
    print(f"  {'':<6} {'s/round':>9} {'wall s':>8} {'final.npz MiB':>14}")
    for name, row in rows.items():
        print(
            f"  {name:<6} {row['s/round']:9.3f} {row['wall s']:8.2f} "
            f"{row['final.npz bytes'] / MiB:14.2f}"
        )
    ratio = rows["he"]["s/round"] / rows["plain"]["s/round"]
    print(f"  he / plain seconds per round: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
