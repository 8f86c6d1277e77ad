"""Quantize on the sites, Dequantize on the server, in the simulator: FedAvg stays within the
quantization error of the unquantized run.

Each site sends an update (DIFF) that depends only on its index and the round, drawn from a
seeded generator, so this test can recompute every update, quantize it independently with numpy
and predict the final model of every run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fedra
from fedra.core import JobStatus, JobValidationError
from fedra.job import FedJob, build_filters, build_result_filters
from fedra.serverapp import load_npz

SITES = 3
ROUNDS = 3
SHAPE = (40, 25)

UPDATE_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import fedra
    import fedra.client as flare

    flare.init()
    index = flare.get_site_index()
    while flare.is_running():
        model = flare.receive()
        w = model.params["w"]
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"w_mean": float(np.mean(w))}))
            continue
        rng = np.random.default_rng([index, model.current_round])
        update = {"w": rng.normal(0.0, 0.1 * (index + 1), size=w.shape).astype(np.float32)}
        flare.send(fedra.FLModel(params=update, params_type="diff",
                                 meta={"num_samples": index + 1}))
    """
)


def _update(index: int, round_: int) -> np.ndarray:
    """The update site ``index`` sends in ``round_`` (from 1): the script's draw, recomputed."""
    rng = np.random.default_rng([index, round_])
    return rng.normal(0.0, 0.1 * (index + 1), size=SHAPE).astype(np.float32)


def _affine_uint8(x: np.ndarray) -> np.ndarray:
    """8-bit affine quantization and back, written out independently of fedra.filters."""
    x64 = x.astype(np.float64)
    lo, hi = float(x64.min()), float(x64.max())
    step = (hi - lo) / 255
    codes = np.clip(np.rint((x64 - lo) / step), 0, 255)
    return (lo + codes * step).astype(x.dtype)


def _predicted(transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """init (zeros) + each round's weighted mean of the transformed updates, in float64."""
    weights = np.arange(1, SITES + 1, dtype=np.float64)
    total = np.zeros(SHAPE)
    for round_ in range(1, ROUNDS + 1):
        updates = [transform(_update(i, round_)).astype(np.float64) for i in range(SITES)]
        total += sum(w * u for w, u in zip(weights, updates, strict=True)) / weights.sum()
    return total


def _run(tmp_path: Path, name: str, bits: int | None, *, dequantize: bool = True) -> np.ndarray:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(UPDATE_SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(SHAPE, dtype=np.float32))
    job = FedJob(f"quantize-{name}", min_clients=SITES)
    job.add_workflow("FedAvg", num_rounds=ROUNDS, min_clients=SITES)
    job.set_persistor(initial_npz="init.npz", key_metric="w_mean")
    job.add_executor("ScriptExecutor", script="train.py")
    job.add_file(src / "train.py").add_file(src / "init.npz")
    if bits is not None:
        job.add_filter("Quantize", bits=bits)
        if dequantize:
            job.add_server_filter("Dequantize")
    ws = tmp_path / name
    summary = fedra.simulate(job, n_clients=SITES, threads=2, workspace=ws, show_progress=False)
    assert summary.status == JobStatus.FINISHED_COMPLETED, summary.error
    final: np.ndarray = load_npz(ws / "models" / "final.npz")["w"]
    assert final.dtype == np.float32 and final.shape == SHAPE
    return final


def test_fedavg_with_quantized_results_stays_within_the_quantization_error(
    tmp_path: Path,
) -> None:
    plain = _run(tmp_path, "plain", None)
    half = _run(tmp_path, "fp16", 16)
    eight = _run(tmp_path, "uint8", 8)

    # Each run is the model predicted from the updates it carried (float32 accumulation).
    np.testing.assert_allclose(plain, _predicted(lambda u: u), rtol=0, atol=1e-5)
    np.testing.assert_allclose(half, _predicted(lambda u: u.astype(np.float16)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(eight, _predicted(_affine_uint8), rtol=0, atol=1e-5)

    # And each stays within the quantization error bound of the unquantized run: a weighted
    # mean of errors is at most the largest one, and the rounds add up.
    updates = [[_update(i, r) for i in range(SITES)] for r in range(1, ROUNDS + 1)]
    fp16_bound = sum(np.max([np.abs(u) for u in us], axis=0) for us in updates) * 2.0**-11
    assert np.all(np.abs(half - plain) <= fp16_bound + 1e-5)
    half_steps = sum(max((u.max() - u.min()) / 255 / 2 for u in us) for us in updates)
    assert np.abs(eight - plain).max() <= half_steps + 1e-5
    # The errors are real (the quantized runs differ from the plain one), and 8 bits lose more.
    assert 0 < np.abs(half - plain).max() < np.abs(eight - plain).max()


def test_without_dequantize_the_server_refuses_the_codes(tmp_path: Path) -> None:
    # Without Dequantize on the server the aggregator refuses the codes, naming the fix.
    with pytest.raises(AssertionError, match="add Dequantize to the server's result_filters"):
        _run(tmp_path, "no-dequantize", 8, dequantize=False)


def test_job_config_builds_the_filters_and_checks_bits(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")

    def job(bits: object) -> FedJob:
        fed = FedJob("quantize-config", min_clients=1)
        fed.add_workflow("FedAvg", num_rounds=1)
        fed.add_executor("ScriptExecutor", script="train.py").add_file(tmp_path / "train.py")
        fed.add_filter("Quantize", bits=bits).add_filter("Dequantize", direction="task_data")
        return fed.add_server_filter("Dequantize")

    loaded = job(8).export(tmp_path / "job")
    app = next(iter(loaded.apps.values()))
    data, result = build_filters(app)
    assert [repr(f) for f in data] == ["Dequantize()"]
    assert [repr(f) for f in result] == ["Quantize(bits=8)"]
    assert [repr(f) for f in build_result_filters(app)] == ["Dequantize()"]
    with pytest.raises(JobValidationError, match="bits must be 16 or 8"):
        job(4).export(tmp_path / "bad")
