"""FedAvg driven through the real TaskBoard by sites that are plain Python functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from workflow_harness import SILENT, Federation, site_number

from fedra.core import FLModel, RunAborted, SiteError, Snapshot, WorkflowError
from fedra.workflows import FedAvg

SITES = ["site-1", "site-2", "site-3"]
#: Weighted mean of the site numbers with weights = site numbers: (1 + 4 + 9) / 6.
STEP = 14 / 6
W0 = np.array([0.0, 1.0, -2.0, 0.5])

Score = Callable[[FLModel], dict[str, float]]


def _no_score(model: FLModel) -> dict[str, float]:
    return {}


def _handlers(score: Score = _no_score, diff: bool = False) -> dict[str, Callable[..., object]]:
    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        n = site_number(site)
        params = {k: np.full_like(v, n) if diff else v + n for k, v in model.params.items()}
        return FLModel(
            params=params,
            params_type="diff" if diff else "full",
            metrics=score(model),
            meta={"num_samples": n},
        )

    def validate(site: str, model: FLModel) -> FLModel:
        return FLModel(metrics=score(model), meta={"num_samples": site_number(site)})

    return {"train": train, "validate": validate}


def _initial() -> FLModel:
    return FLModel(params={"w": W0.copy()})


def _params(fed: Federation, name: str) -> dict[str, np.ndarray]:
    model = fed.store.load_model(name)
    assert model is not None and model.params is not None
    return model.params


@pytest.mark.parametrize("diff", [False, True], ids=["full", "diff"])
def test_final_model_matches_closed_form(tmp_path: Path, diff: bool) -> None:
    fed = Federation(SITES, _handlers(diff=diff), tmp_path)
    ctx = fed.context(initial=_initial())
    FedAvg(num_rounds=3, wait_time_after_min_received=0).run(ctx)

    for r in (1, 2, 3):
        np.testing.assert_allclose(_params(fed, f"round-{r:03d}")["w"], W0 + r * STEP, rtol=1e-12)
    assert fed.store.load_model("round-004") is None
    np.testing.assert_allclose(_params(fed, "final")["w"], W0 + 3 * STEP, rtol=1e-12)
    shared = ctx.shared["global"]
    assert shared.params is not None
    np.testing.assert_array_equal(shared.params["w"], _params(fed, "final")["w"])
    # Every site trained in every round, then validated the final model once.
    assert sorted(fed.rounds_sent("train")) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert len(fed.rounds_sent("validate")) == 3
    assert all(v.accepted for v in fed.verdicts)
    assert [s.state["round"] for s in fed.snapshots] == [1, 2, 3]
    assert [(r.workflow, r.round) for r in fed.events.rounds][:3] == [
        ("FedAvg", 1),
        ("FedAvg", 2),
        ("FedAvg", 3),
    ]


def test_sites_receive_readonly_global(tmp_path: Path) -> None:
    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        with pytest.raises(ValueError):
            model.params["w"][0] = 100.0
        return FLModel(params={"w": model.params["w"] + 1})

    fed = Federation(SITES, {"train": train, "validate": lambda s, m: FLModel()}, tmp_path)
    FedAvg(num_rounds=2).run(fed.context(initial=_initial()))
    np.testing.assert_allclose(_params(fed, "final")["w"], W0 + 2)


# Rounds 0..N: the global model after round r is W0 + r*STEP. Sites score the model they
# receive by its distance to a target, so the best model is the one of round ``best``.
@pytest.mark.parametrize("best", [0, 2, 4], ids=lambda b: f"best-after-round-{b}")
@pytest.mark.parametrize(
    ("key", "higher", "via_ctx"),
    [("accuracy", True, True), ("loss", False, True), ("loss", False, False)],
    ids=["higher-is-better", "lower-is-better", "lower-is-better-by-arg"],
)
def test_best_model_by_key_metric(
    tmp_path: Path, best: int, key: str, higher: bool, via_ctx: bool
) -> None:
    target = float(np.mean(W0)) + best * STEP + 0.1
    sign = -1.0 if higher else 1.0

    def score(model: FLModel) -> dict[str, float]:
        assert model.params is not None
        distance = (float(np.mean(model.params["w"])) - target) ** 2
        # A decoy metric that points the other way: it must not pick the model.
        return {key: sign * distance, "decoy": -sign * distance}

    fed = Federation(SITES, _handlers(score), tmp_path)
    if via_ctx:
        ctx = fed.context(initial=_initial(), key_metric=key, higher_is_better=higher)
        workflow = FedAvg(num_rounds=4, wait_time_after_min_received=0)
    else:
        ctx = fed.context(initial=_initial(), key_metric="decoy", higher_is_better=True)
        workflow = FedAvg(num_rounds=4, key_metric=key, higher_is_better=higher)
    workflow.run(ctx)

    expected = W0 + best * STEP
    np.testing.assert_allclose(_params(fed, "best")["w"], expected, rtol=1e-12, atol=1e-12)
    reference = "final" if best == 4 else f"round-{best:03d}" if best else None
    if reference is not None:
        np.testing.assert_array_equal(_params(fed, "best")["w"], _params(fed, reference)["w"])
    info = json.loads((fed.store.models / "best.json").read_text())
    assert info["metrics"][key] == pytest.approx(sign * 0.01)


def test_site_error_names_the_site(tmp_path: Path) -> None:
    handlers = _handlers()
    train = handlers["train"]

    def failing(site: str, model: FLModel) -> object:
        if site == "site-2" and model.current_round == 2:
            raise RuntimeError("disk full")
        return train(site, model)

    handlers["train"] = failing
    fed = Federation(SITES, handlers, tmp_path)
    with pytest.raises(SiteError) as info:
        FedAvg(num_rounds=3).run(fed.context(initial=_initial()))
    assert info.value.site == "site-2"
    assert info.value.task == "train"
    assert "site-2" in str(info.value)
    assert "RuntimeError: disk full" in str(info.value)
    assert "Traceback" in info.value.detail
    assert fed.store.load_model("round-001") is not None
    assert fed.store.load_model("round-002") is None


def test_too_few_results_is_a_workflow_error(tmp_path: Path) -> None:
    handlers = _handlers()
    train = handlers["train"]
    handlers["train"] = lambda site, model: SILENT if site == "site-3" else train(site, model)
    fed = Federation(SITES, handlers, tmp_path)
    workflow = FedAvg(num_rounds=2, min_clients=3, task_timeout=0.05)
    with pytest.raises(WorkflowError, match="2 results arrived, min_clients is 3"):
        workflow.run(fed.context(initial=_initial()))
    assert fed.store.load_model("round-001") is None


def test_min_clients_above_connected_sites(tmp_path: Path) -> None:
    fed = Federation(SITES, _handlers(), tmp_path)
    with pytest.raises(WorkflowError, match="3 sites connected, min_clients is 4"):
        FedAvg(min_clients=4).run(fed.context(initial=_initial()))
    assert fed.delivered == []


def test_enough_results_despite_a_silent_site(tmp_path: Path) -> None:
    handlers = _handlers()
    train = handlers["train"]
    handlers["train"] = lambda site, model: SILENT if site == "site-3" else train(site, model)
    fed = Federation(SITES, handlers, tmp_path)
    FedAvg(num_rounds=1, min_clients=2, wait_time_after_min_received=0, final_validation=False).run(
        fed.context(initial=_initial())
    )
    # Only sites 1 and 2 count: (1*1 + 2*2) / 3.
    np.testing.assert_allclose(_params(fed, "final")["w"], W0 + 5 / 3, rtol=1e-12)


def test_answer_without_params_is_a_workflow_error(tmp_path: Path) -> None:
    handlers = _handlers()
    handlers["train"] = lambda site, model: FLModel(metrics={"accuracy": 1.0})
    fed = Federation(SITES, handlers, tmp_path)
    with pytest.raises(WorkflowError, match="without params"):
        FedAvg().run(fed.context(initial=_initial()))


def test_abort_stops_before_the_next_round(tmp_path: Path) -> None:
    fed = Federation(SITES, _handlers(), tmp_path)

    def abort_after_round_1(snapshot: Snapshot) -> None:
        fed.board.abort("stop requested")

    with pytest.raises(RunAborted):
        FedAvg(num_rounds=3).run(fed.context(initial=_initial(), checkpoint=abort_after_round_1))
    assert set(fed.rounds_sent("train")) == {1}


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_invalid_arguments(bad: object) -> None:
    with pytest.raises(ValueError):
        FedAvg(num_rounds=bad)
    with pytest.raises(ValueError):
        FedAvg(min_clients=bad)


class Interrupted(Exception):
    """Stands for the server stopping after a checkpoint."""


@pytest.mark.parametrize("k", [1, 3])
def test_snapshot_restore_gives_the_same_model(tmp_path: Path, k: int) -> None:
    total = 5
    # Peaks at the model after round 1, so the best must survive the restart too.
    target = float(np.mean(W0)) + STEP + 0.1

    def score(model: FLModel) -> dict[str, float]:
        assert model.params is not None
        return {"accuracy": -abs(float(np.mean(model.params["w"])) - target)}

    straight = Federation(SITES, _handlers(score), tmp_path / "straight")
    FedAvg(num_rounds=total).run(straight.context(initial=_initial()))
    final_a = _params(straight, "final")

    interrupted = Federation(SITES, _handlers(score), tmp_path / "restarted")
    snapshots = 0

    def stop_after_k(snapshot: Snapshot) -> None:
        nonlocal snapshots
        interrupted.store.save_snapshot(0, snapshot)
        snapshots += 1
        if snapshots == k:
            raise Interrupted

    with pytest.raises(Interrupted):
        FedAvg(num_rounds=total).run(
            interrupted.context(initial=_initial(), checkpoint=stop_after_k)
        )
    assert interrupted.store.load_model("final") is None

    saved = interrupted.store.load_snapshot()
    assert saved is not None
    resumed = Federation(SITES, _handlers(score), tmp_path / "restarted")
    workflow = FedAvg(num_rounds=total)
    workflow.restore(saved[1])
    # The shared initial model must not override the restored one.
    workflow.run(resumed.context(initial=_initial()))

    assert sorted(set(resumed.rounds_sent("train"))) == list(range(k + 1, total + 1))
    assert len(resumed.rounds_sent("train")) == 3 * (total - k)
    final_b = _params(resumed, "final")
    assert final_b.keys() == final_a.keys()
    assert np.array_equal(final_b["w"], final_a["w"])
    assert np.array_equal(_params(resumed, "best")["w"], _params(straight, "best")["w"])


def test_restore_refuses_another_workflows_snapshot() -> None:
    with pytest.raises(WorkflowError, match="Cyclic"):
        FedAvg().restore(Snapshot("Cyclic", {"round": 1}, {}))


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({}, "'round' must be an integer"),
        ({"round": "2"}, "'round' must be an integer"),
        ({"round": -1}, "'round' must be an integer"),
        ({"round": True}, "'round' must be an integer"),
        ({"round": 2, "best": "0.9"}, "'best' must be a number"),
    ],
)
def test_restore_refuses_a_damaged_state(state: dict[str, object], match: str) -> None:
    with pytest.raises(WorkflowError, match=match):
        FedAvg().restore(Snapshot("FedAvg", state, {}))


def test_restore_reads_round_and_best() -> None:
    workflow = FedAvg()
    workflow.restore(Snapshot("FedAvg", {"round": 2, "best": 1}, {}))
    assert workflow.snapshot().state == {"round": 2, "best": 1.0, "num_rounds": 5}
