"""SecAggFedAvg through the real TaskBoard, with sites running SecAggClient, every message
going through the wire codec."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from secagg_harness import names, wire

from fedra.client import Executor, SecAggClient, SiteContext, SiteRunner
from fedra.core import FLModel, JobValidationError, Task, TaskResult, WorkflowContext, WorkflowError
from fedra.filters import GaussianPrivacy
from fedra.job import FedJob
from fedra.secagg import SecAggError
from fedra.serverapp import EventLog, RunStore, TaskBoard
from fedra.workflows import FedAvg, SecAggFedAvg

W0 = {"a": np.array([0.5, -1.0, 2.0], dtype=np.float32), "b": np.zeros((2, 2), dtype=np.float64)}
Train = Callable[[str, int, FLModel], FLModel]


def _step(site: str) -> float:
    return 0.1 * int(site.rsplit("-", 1)[1])


def default_train(site: str, round_num: int, model: FLModel) -> FLModel:
    """Site k adds 0.1 * k to every weight and reports num_samples = k."""
    assert model.params is not None
    k = int(site.rsplit("-", 1)[1])
    params = {n: v + _step(site) for n, v in model.params.items()}
    return FLModel(params=params, metrics={"loss": float(k)}, meta={"num_samples": k})


class FunctionExecutor(Executor):
    def __init__(self, train: Train) -> None:
        self.train = train

    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        if task_name == "validate":
            return FLModel(metrics={"score": 1.0})
        if task_name != "train":  # a script that answers whatever it is asked
            return FLModel(metrics={"score": 0.0})
        return self.train(ctx.site_name, data.current_round or 0, data)


SILENT: set[tuple[str, str, int]] = set()


class WireFederation:
    """Sites that answer synchronously, every task and result encoded and decoded."""

    def __init__(
        self,
        root: Path,
        count: int = 5,
        train: Train = default_train,
        wrap: bool = True,
        silent: Sequence[tuple[str, str, int]] = (),
    ) -> None:
        self.silent = set(silent)
        self.runners: dict[str, SiteRunner] = {}
        for index, site in enumerate(names(count)):
            inner = FunctionExecutor(train)
            executor: Executor = SecAggClient(inner) if wrap else inner
            ctx = SiteContext(site, index, count, workdir=root / site)
            self.runners[site] = SiteRunner(ctx, [(("*",), executor)])
        self.board = TaskBoard(list(self.runners), self._deliver, job_id="job")
        self.store = RunStore(root)
        self.received: list[TaskResult] = []

    def _deliver(self, task: Task) -> None:
        sent = Task(task.name, wire(task.data), task.site, task.id, task.job_id)
        if (task.site, task.name, task.data.current_round or 0) in self.silent:
            return
        try:
            result = self.runners[task.site].handle(sent)
        except Exception:
            result = TaskResult(task.id, task.name, task.site, error=traceback.format_exc())
        if result.data is not None:
            result.data = wire(result.data)
        self.received.append(result)
        self.board.submit(result)

    def context(self, initial: dict[str, np.ndarray] | None = W0) -> WorkflowContext:
        ctx = WorkflowContext(
            fleet=self.board,
            store=self.store,
            events=EventLog(),
            checkpoint=lambda snapshot: None,
            key_metric="loss",
            higher_is_better=False,
        )
        if initial is not None:
            ctx.shared["global"] = FLModel(params={k: v.copy() for k, v in initial.items()})
        return ctx

    def round_info(self, round_num: int) -> dict[str, object]:
        path = self.store.models / f"round-{round_num:03d}.json"
        info: dict[str, object] = json.loads(path.read_text())
        return info


def _final(fed: WireFederation) -> dict[str, np.ndarray]:
    model = fed.store.load_model("final")
    assert model is not None and model.params is not None
    return model.params


def _weighted_step(sites: Sequence[str]) -> float:
    weights = [int(s.rsplit("-", 1)[1]) for s in sites]
    return sum(w * _step(s) for w, s in zip(weights, sites, strict=True)) / sum(weights)


def test_two_rounds_match_plain_fedavg_within_the_quantization_error(tmp_path: Path) -> None:
    workflow = SecAggFedAvg(
        num_rounds=2, min_clients=3, clip=1.0, bits=24, wait_time_after_min_received=0
    )
    fed = WireFederation(tmp_path / "secagg")
    workflow.run(fed.context())
    plain = WireFederation(tmp_path / "plain", wrap=False)
    FedAvg(num_rounds=2, min_clients=3, wait_time_after_min_received=0).run(plain.context())
    step = workflow.config.quantizer.step
    for name, base in W0.items():
        expected = base.astype(np.float64) + 2 * _weighted_step(names(5))
        got = _final(fed)[name]
        assert got.dtype == base.dtype
        tolerance = 2 * step / 2 + (1e-6 if base.dtype == np.float32 else 1e-12)
        np.testing.assert_allclose(got, expected, atol=tolerance, rtol=0)
        np.testing.assert_allclose(got, _final(plain)[name], atol=tolerance, rtol=0)
    info = fed.round_info(1)
    meta = info["meta"]
    assert isinstance(meta, dict)
    assert meta["secagg"]["survivors"] == names(5) and meta["secagg"]["dropped"] == {}
    assert meta["site_metrics"]["loss"] == pytest.approx(3.0)  # plain mean: weights are secret
    assert workflow.snapshot().workflow == "SecAggFedAvg"


def test_the_server_gets_masked_vectors_and_protocol_bytes_only(tmp_path: Path) -> None:
    fed = WireFederation(tmp_path)
    SecAggFedAvg(num_rounds=1, min_clients=3, wait_time_after_min_received=0).run(fed.context())
    train_results = [r for r in fed.received if r.task_name == "secagg_masked_input"]
    assert len(train_results) == 5
    for result in fed.received:
        if result.task_name == "validate":
            continue
        assert result.data is not None
        for name, array in (result.data.params or {}).items():
            assert name.startswith("_secagg/") and array.dtype.kind == "u", (name, array.dtype)
        assert "num_samples" not in result.data.meta


def test_a_site_failing_to_train_drops_out_of_that_round_only(tmp_path: Path) -> None:
    def train(site: str, round_num: int, model: FLModel) -> FLModel:
        if site == "site-3" and round_num == 1:
            raise RuntimeError("out of memory on site-3")
        return default_train(site, round_num, model)

    fed = WireFederation(tmp_path, train=train)
    SecAggFedAvg(num_rounds=2, min_clients=3, wait_time_after_min_received=0).run(fed.context())
    first, second = fed.round_info(1)["meta"], fed.round_info(2)["meta"]
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["secagg"]["survivors"] == ["site-1", "site-2", "site-4", "site-5"]
    assert "out of memory on site-3" in first["secagg"]["dropped"]["site-3"]
    assert second["secagg"]["dropped"] == {}
    expected = _weighted_step(["site-1", "site-2", "site-4", "site-5"]) + _weighted_step(names(5))
    np.testing.assert_allclose(_final(fed)["b"], expected, atol=1e-6, rtol=0)


def test_a_site_that_goes_silent_after_masking_still_counts(tmp_path: Path) -> None:
    fed = WireFederation(tmp_path, silent=[("site-5", "secagg_unmask", 1)])
    workflow = SecAggFedAvg(num_rounds=1, min_clients=3, wait_time_after_min_received=0.05)
    workflow.run(fed.context())
    meta = fed.round_info(1)["meta"]
    assert isinstance(meta, dict)
    assert meta["secagg"]["survivors"] == names(5)
    assert meta["secagg"]["dropped"] == {"site-5": "unmask: no answer"}
    np.testing.assert_allclose(_final(fed)["b"], _weighted_step(names(5)), atol=1e-6, rtol=0)


def test_too_many_dropouts_fail_the_round(tmp_path: Path) -> None:
    def train(site: str, round_num: int, model: FLModel) -> FLModel:
        if site in ("site-1", "site-2", "site-3"):
            raise RuntimeError("down")
        return default_train(site, round_num, model)

    fed = WireFederation(tmp_path, train=train)
    with pytest.raises(SecAggError, match=r"too many sites dropped out.*site-1 \(masked_input: "):
        SecAggFedAvg(num_rounds=1, min_clients=2, wait_time_after_min_received=0).run(fed.context())


def test_a_site_without_secagg_client_is_named_in_a_clear_error(tmp_path: Path) -> None:
    fed = WireFederation(tmp_path, wrap=False)
    with pytest.raises(SecAggError, match=r"stage advertise: .*is the site a SecAggClient"):
        SecAggFedAvg(num_rounds=1, min_clients=3, wait_time_after_min_received=0).run(fed.context())


def test_an_initial_model_is_required(tmp_path: Path) -> None:
    fed = WireFederation(tmp_path)
    with pytest.raises(WorkflowError, match="needs an initial global model"):
        SecAggFedAvg(num_rounds=1).run(fed.context(initial=None))


def test_only_the_weighted_aggregator_is_possible() -> None:
    with pytest.raises(ValueError, match="aggregator must be 'weighted'"):
        SecAggFedAvg(aggregator="median")
    with pytest.raises(ValueError, match="clip must be finite"):
        SecAggFedAvg(clip=-1.0)


def test_update_filters_run_before_masking(tmp_path: Path) -> None:
    """A GaussianPrivacy filter without noise clips each site's update norm before masking."""
    fed = WireFederation(tmp_path, count=3)
    clip_norm = 0.05
    for runner in fed.runners.values():
        executor = runner.executor_for("x")
        assert isinstance(executor, SecAggClient)
        executor.update_filters = (GaussianPrivacy(clip_norm=clip_norm, noise_multiplier=0.0),)
    SecAggFedAvg(num_rounds=1, min_clients=3, wait_time_after_min_received=0).run(fed.context())
    size = sum(v.size for v in W0.values())
    # Every site's update (0.1k on every value) has norm > 0.05: clipped to 0.05 / sqrt(size).
    per_value = clip_norm / np.sqrt(size)
    np.testing.assert_allclose(_final(fed)["b"], per_value, atol=1e-6, rtol=0)


def test_job_configs_name_the_secagg_components(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import fedra.client as flare\n")
    job = FedJob("secagg", min_clients=3)
    job.add_workflow("SecAggFedAvg", num_rounds=1, min_clients=3, clip=0.5)
    job.add_executor("SecAggScriptExecutor", script="train.py")
    job.add_file(script)
    job.export(tmp_path / "ok")
    bad = FedJob("secagg", min_clients=3)
    bad.add_workflow("SecAggFedAvg", clip=0)
    bad.add_executor("SecAggScriptExecutor", script="train.py")
    bad.add_file(script)
    with pytest.raises(JobValidationError, match=r"workflows\[0\]\.args.*clip must be finite"):
        bad.export(tmp_path / "bad")
    filters = FedJob("secagg", min_clients=3)
    filters.add_workflow("SecAggFedAvg")
    filters.add_executor(
        "SecAggScriptExecutor", script="train.py", update_filters=[{"class": "Nope"}]
    )
    filters.add_file(script)
    with pytest.raises(JobValidationError, match="unknown filter 'Nope'"):
        filters.export(tmp_path / "filters")
