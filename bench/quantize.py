"""Cost and error of Quantize/Dequantize on a large model: bytes on the wire, time, FedAvg error.

Run with ``.venv/bin/python -m bench.quantize`` (``--help`` for the options; about a minute on
2 cores). For a float32 model of ``--mb`` MB (10^6 bytes) split into ``--layers`` arrays:

* **Wire**: the size of one result (a DIFF of the whole model) as ``fedra.wire.encode_model``
  encodes it: float32, after ``Quantize(bits=16)`` and after ``Quantize(bits=8)``.
* **Time** (median of ``--repeats``): ``Quantize`` on the site and ``Dequantize`` on the server
  for one result, called as the filter chains call them.
* **FedAvg error**: ``--sites`` random updates (each site its own scale and ``num_samples``)
  averaged by FedAvg's ``WeightedAggregator``: once from the float32 updates, once from the
  quantized-then-dequantized ones. The table gives the largest absolute difference, the
  relative L2 difference ``||mean_q - mean_32|| / ||mean_32||`` and the bound for the largest
  difference: for 8 bits half the largest step (``max_i scale_i / 2``), for 16 bits
  ``2^-11 * max |u|``. Updates are drawn from a normal distribution and from a heavy-tailed
  Student t (3 degrees of freedom): 8 bits spend their 256 levels on the whole range, so a few
  outliers cost every other value precision. The float32 mean itself (float32 accumulation)
  is compared with a float64 mean too, as the floor of what any transfer could achieve.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from bench.machine import machine_info
from fedra.aggregators import WeightedAggregator
from fedra.core import FLModel, Params, ParamsType
from fedra.filters import Dequantize, FilterContext, Quantize
from fedra.wire import encode_model

MB = 10**6
MiB = 2**20
SITE_CTX = FilterContext("site-1", "train", "task_result", 1)
SERVER_CTX = FilterContext("site-1", "train", "task_result", 1)


def _shapes(total_values: int, layers: int) -> list[tuple[int, ...]]:
    per_layer = total_values // layers
    shapes: list[tuple[int, ...]] = [(per_layer // 1000, 1000)] * layers
    rest = total_values - sum(int(np.prod(s)) for s in shapes)
    return shapes + ([(rest,)] if rest else [])


def _update(shapes: Sequence[tuple[int, ...]], seed: int, scale: float, dist: str) -> Params:
    rng = np.random.default_rng(seed)
    params: Params = {}
    for i, shape in enumerate(shapes):
        if dist == "normal":
            values = rng.standard_normal(shape, dtype=np.float32)
        else:
            values = rng.standard_t(3, size=shape).astype(np.float32)
        values *= np.float32(scale * (1 + i % 3))  # layers of different scales
        params[f"layer{i:02d}.weight"] = values
    return params


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wire_and_time(shapes: Sequence[tuple[int, ...]], repeats: int) -> dict[str, dict[str, float]]:
    """Per encoding: encoded bytes of one result, and the filters' seconds (medians)."""
    model = FLModel(params=_update(shapes, 0, 1e-3, "normal"), params_type=ParamsType.DIFF)
    rows: dict[str, dict[str, float]] = {
        "float32": {"bytes": float(len(encode_model(model))), "quantize": 0.0, "dequantize": 0.0}
    }
    for bits in (16, 8):
        quantize = Quantize(bits)
        quantized = quantize(model, SITE_CTX)
        rows[f"{bits} bits"] = {
            "bytes": float(len(encode_model(quantized))),
            "quantize": _median_time(functools.partial(quantize, model, SITE_CTX), repeats),
            "dequantize": _median_time(
                functools.partial(Dequantize(), quantized, SERVER_CTX), repeats
            ),
        }
        del quantized
    return rows


def _site_updates(
    shapes: Sequence[tuple[int, ...]], sites: int, dist: str
) -> Iterator[tuple[FLModel, float]]:
    rng = np.random.default_rng(1234)
    scales = rng.uniform(0.5e-3, 2e-3, size=sites)
    samples = rng.integers(100, 1000, size=sites)
    for site in range(sites):
        params = _update(shapes, 100 + site, float(scales[site]), dist)
        meta = {"num_samples": int(samples[site])}
        yield FLModel(params=params, params_type=ParamsType.DIFF, meta=meta), float(scales[site])


def fedavg_error(
    shapes: Sequence[tuple[int, ...]], sites: int, bits: int, dist: str
) -> dict[str, float]:
    """FedAvg of ``sites`` updates, float32 against quantized; the differences and the bound."""
    plain, quantized = WeightedAggregator(), WeightedAggregator()
    exact: dict[str, np.ndarray] = {}
    total = 0.0
    bound = 0.0
    for model, _scale in _site_updates(shapes, sites, dist):
        assert model.params is not None
        plain.accept(model)
        total += model.num_samples
        for name, array in model.params.items():
            term = array.astype(np.float64) * model.num_samples
            if name in exact:
                exact[name] += term
            else:
                exact[name] = term
        q = Quantize(bits)(model, SITE_CTX)
        if bits == 8:
            step = max(r["scale"] for r in q.meta["quantized"].values())
            bound = max(bound, step / 2)
        else:
            largest = max(float(np.max(np.abs(a))) for a in model.params.values())
            bound = max(bound, largest * 2.0**-11)
        quantized.accept(Dequantize()(q, SERVER_CTX))
        del model, q
    mean32 = plain.result().params or {}
    meanq = quantized.result().params or {}
    max_abs = 0.0
    diff_sq = norm_sq = f32_sq = 0.0
    for name, ref in mean32.items():
        ref64 = ref.astype(np.float64)
        diff = meanq[name].astype(np.float64) - ref64
        max_abs = max(max_abs, float(np.max(np.abs(diff))))
        diff_sq += float(np.dot(diff.ravel(), diff.ravel()))
        norm_sq += float(np.dot(ref64.ravel(), ref64.ravel()))
        f32_err = ref64 - exact[name] / total
        f32_sq += float(np.dot(f32_err.ravel(), f32_err.ravel()))
    return {
        "max_abs": max_abs,
        "bound": bound,
        "rel_l2": (diff_sq / norm_sq) ** 0.5,
        "f32_rel_l2": (f32_sq / norm_sq) ** 0.5,
        "mean_abs": float(np.mean([np.mean(np.abs(a)) for a in mean32.values()])),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="model size in MB of float32")
    parser.add_argument("--layers", type=int, default=10, help="arrays the model is split into")
    parser.add_argument("--sites", type=int, default=8, help="sites averaged by FedAvg")
    parser.add_argument("--repeats", type=int, default=3, help="timings per step (median)")
    args = parser.parse_args(argv)
    shapes = _shapes(int(args.mb * MB) // 4, args.layers)
    values = sum(int(np.prod(s)) for s in shapes)
    for key, value in machine_info().items():
        print(f"{key}: {value}")
    print(f"model: {values:,} float32 values ({values * 4 / MB:.1f} MB) in {len(shapes)} arrays\n")

    print(
        f"one result on the wire (fedra.wire.encode_model), filter time (median of {args.repeats}):"
    )
    rows = wire_and_time(shapes, args.repeats)
    base = rows["float32"]["bytes"]
    print(
        f"  {'':<8} {'bytes':>13} {'MiB':>8} {'vs f32':>7} {'Quantize s':>11} {'Dequantize s':>13}"
    )
    for label, row in rows.items():
        timing = (
            f"{row['quantize']:11.3f} {row['dequantize']:13.3f}"
            if label != "float32"
            else f"{'-':>11} {'-':>13}"
        )
        print(
            f"  {label:<8} {int(row['bytes']):13,d} {row['bytes'] / MiB:8.2f} "
            f"{row['bytes'] / base:7.3f} {timing}"
        )

    print(f"\nFedAvg of {args.sites} random updates (WeightedAggregator), quantized vs float32:")
    print(
        f"  {'updates':<9} {'bits':>4} {'max abs diff':>13} {'bound':>10} {'rel L2 diff':>12} "
        f"{'mean |avg|':>11} {'f32 vs f64 rel L2':>18}"
    )
    for dist in ("normal", "t3"):
        for bits in (16, 8):
            err = fedavg_error(shapes, args.sites, bits, dist)
            print(
                f"  {dist:<9} {bits:>4} {err['max_abs']:13.3e} {err['bound']:10.3e} "
                f"{err['rel_l2']:12.3e} {err['mean_abs']:11.3e} {err['f32_rel_l2']:18.3e}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
