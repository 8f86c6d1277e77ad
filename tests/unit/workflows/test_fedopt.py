"""FedOpt and its aliases against a numpy re-implementation of each server optimizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from workflow_harness import Federation, site_number

from fedra.core import FLModel, Snapshot, WorkflowError
from fedra.workflows import FedAvg
from fedra.workflows.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi

SITES = ["site-1", "site-2", "site-3"]
RNG = np.random.default_rng(7)
#: A fixed pull per site: site n moves w to w*(1 - n/10) + n*PULL[n].
PULL = {n: RNG.normal(size=(2, 3)) for n in (1, 2, 3)}
X0 = {
    "w": RNG.normal(size=(2, 3)),
    "b": RNG.normal(size=3).astype(np.float32),
    "count": np.array([10, 20], dtype=np.int64),
}


def _local(n: int, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What site n sends back for ``params`` (also the reference's site model)."""
    w = params["w"] * (1 - n / 10) + n * PULL[n]
    b = (params["b"] * np.float32(1 - n / 10) + np.float32(n) * PULL[n][0]).astype(np.float32)
    return {"w": w, "b": b, "count": params["count"] + n}


def _handlers() -> dict[str, Callable[..., object]]:
    def train(site: str, model: FLModel) -> FLModel:
        n = site_number(site)
        start = dict(model.params) if model.params is not None else X0
        return FLModel(params=_local(n, start), meta={"num_samples": n})

    def validate(site: str, model: FLModel) -> FLModel:
        return FLModel(metrics={"accuracy": 0.5}, meta={"num_samples": 1})

    return {"train": train, "validate": validate}


def _average(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FedAvg's weighted mean (weights = site numbers), in float64."""
    return {k: sum(n * _local(n, params)[k].astype(np.float64) for n in (1, 2, 3)) / 6 for k in X0}


def _reference(
    optimizer: str,
    rounds: int,
    server_lr: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> list[dict[str, np.ndarray]]:
    """The global model after each round, straight from the paper's update rules."""
    x = {k: v.copy() for k, v in X0.items()}
    m = {k: np.zeros(X0[k].shape) for k in ("w", "b")}
    v = {
        k: np.full(X0[k].shape, tau**2) if optimizer != "sgdm" else np.zeros(X0[k].shape)
        for k in ("w", "b")
    }
    history = []
    for _ in range(rounds):
        avg = _average(x)
        new = {"count": np.rint(avg["count"]).astype(np.int64)}
        for k in ("w", "b"):
            d = avg[k].astype(X0[k].dtype).astype(np.float64) - x[k].astype(np.float64)
            if optimizer == "sgdm":
                v[k] = beta1 * v[k] + d
                step = server_lr * v[k]
            else:
                m[k] = beta1 * m[k] + (1 - beta1) * d
                if optimizer == "adam":
                    v[k] = beta2 * v[k] + (1 - beta2) * d**2
                elif optimizer == "yogi":
                    v[k] = v[k] - (1 - beta2) * d**2 * np.sign(v[k] - d**2)
                else:
                    v[k] = v[k] + d**2
                step = server_lr * m[k] / (np.sqrt(v[k]) + tau)
            new[k] = (x[k].astype(np.float64) + step).astype(X0[k].dtype)
        x = new
        history.append(x)
    return history


def _initial() -> FLModel:
    return FLModel(params={k: v.copy() for k, v in X0.items()})


def _params(fed: Federation, name: str) -> dict[str, np.ndarray]:
    model = fed.store.load_model(name)
    assert model is not None and model.params is not None
    return model.params


CASES = [
    (FedAvgM, "sgdm", {"server_lr": 0.7, "beta1": 0.5}),
    (FedAdam, "adam", {"server_lr": 0.05}),
    (FedYogi, "yogi", {"server_lr": 0.05, "beta2": 0.9}),
    (FedAdagrad, "adagrad", {"server_lr": 0.05, "tau": 1e-2}),
]


@pytest.mark.parametrize(("cls", "optimizer", "args"), CASES, ids=[c[1] for c in CASES])
def test_rounds_match_the_reference(
    tmp_path: Path, cls: type[FedOpt], optimizer: str, args: dict[str, float]
) -> None:
    fed = Federation(SITES, _handlers(), tmp_path)
    workflow = cls(num_rounds=3, wait_time_after_min_received=0, **args)  # type: ignore[arg-type]
    assert workflow.name == cls.__name__ and workflow.optimizer == optimizer
    workflow.run(fed.context(initial=_initial()))

    expected = _reference(optimizer, 3, **args)
    for r, want in enumerate(expected, start=1):
        got = _params(fed, f"round-{r:03d}")
        assert {k: a.dtype for k, a in got.items()} == {k: a.dtype for k, a in X0.items()}
        np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got["b"], want["b"], rtol=1e-6, atol=1e-6)
        # Integer params are averaged as in FedAvg, no optimizer.
        np.testing.assert_array_equal(got["count"], want["count"])
    np.testing.assert_array_equal(_params(fed, "final")["w"], _params(fed, "round-003")["w"])
    assert [s.workflow for s in fed.snapshots] == [cls.__name__] * 3
    assert [(r.workflow, r.round) for r in fed.events.rounds][:3] == [
        (cls.__name__, 1),
        (cls.__name__, 2),
        (cls.__name__, 3),
    ]


def test_adaptive_step_differs_from_the_average(tmp_path: Path) -> None:
    """Guards the reference test: the optimizer really changes the model."""
    fed = Federation(SITES, _handlers(), tmp_path)
    FedAdam(num_rounds=1, server_lr=0.05).run(fed.context(initial=_initial()))
    assert not np.allclose(_params(fed, "round-001")["w"], _average(X0)["w"], atol=1e-3)


def test_sgdm_without_momentum_is_fedavg(tmp_path: Path) -> None:
    # float32 and int64 params: float64 maths on float32 values gives the average bit for bit.
    def initial() -> FLModel:
        return FLModel(params={"w": X0["b"].copy(), "count": X0["count"].copy()})

    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        n = site_number(site)
        w = model.params["w"] * np.float32(1 - n / 10) + np.float32(n) * PULL[n][0]
        return FLModel(
            params={"w": w.astype(np.float32), "count": model.params["count"] + n},
            meta={"num_samples": n},
        )

    handlers = {"train": train, "validate": _handlers()["validate"]}
    plain = Federation(SITES, handlers, tmp_path / "fedavg")
    FedAvg(num_rounds=4).run(plain.context(initial=initial()))
    opt = Federation(SITES, handlers, tmp_path / "fedopt")
    FedOpt(num_rounds=4, optimizer="sgdm", server_lr=1.0, beta1=0.0).run(
        opt.context(initial=initial())
    )
    for name in ("round-001", "round-002", "round-003", "round-004", "final"):
        a, b = _params(plain, name), _params(opt, name)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype
            np.testing.assert_array_equal(a[k], b[k])


def test_first_round_without_a_global_model_is_plain_averaging(tmp_path: Path) -> None:
    fed = Federation(SITES, _handlers(), tmp_path)
    FedAdam(num_rounds=2, server_lr=0.05).run(fed.context())
    first = _params(fed, "round-001")
    np.testing.assert_allclose(first["w"], _average(X0)["w"], rtol=1e-12)
    # Round 2 is an Adam step from there, with fresh optimizer state.
    avg = _average(first)
    d = avg["w"] - first["w"]
    m, v = 0.1 * d, 0.99 * 1e-6 + 0.01 * d**2
    np.testing.assert_allclose(
        _params(fed, "round-002")["w"], first["w"] + 0.05 * m / (np.sqrt(v) + 1e-3), rtol=1e-6
    )


class Interrupted(Exception):
    """Stands for the server stopping after a checkpoint."""


@pytest.mark.parametrize("cls", [FedAvgM, FedAdam, FedYogi, FedAdagrad])
@pytest.mark.parametrize("k", [1, 3])
def test_snapshot_restore_gives_the_same_model(tmp_path: Path, cls: type[FedOpt], k: int) -> None:
    total = 5
    straight = Federation(SITES, _handlers(), tmp_path / "straight")
    cls(num_rounds=total).run(straight.context(initial=_initial()))

    interrupted = Federation(SITES, _handlers(), tmp_path / "restarted")
    seen = 0

    def stop_after_k(snapshot: Snapshot) -> None:
        nonlocal seen
        interrupted.store.save_snapshot(0, snapshot)
        seen += 1
        if seen == k:
            raise Interrupted

    with pytest.raises(Interrupted):
        cls(num_rounds=total).run(interrupted.context(initial=_initial(), checkpoint=stop_after_k))
    saved = interrupted.store.load_snapshot()
    assert saved is not None
    assert any(name.startswith("v:") for name in saved[1].arrays)

    resumed = Federation(SITES, _handlers(), tmp_path / "restarted")
    workflow = cls(num_rounds=total)
    workflow.restore(saved[1])
    workflow.run(resumed.context(initial=_initial()))
    assert sorted(set(resumed.rounds_sent("train"))) == list(range(k + 1, total + 1))
    final_a, final_b = _params(straight, "final"), _params(resumed, "final")
    assert final_a.keys() == final_b.keys()
    for name in final_a:
        assert np.array_equal(final_a[name], final_b[name])


def test_restore_refuses_another_optimizer() -> None:
    snapshot = FedOpt(optimizer="adam").snapshot()
    with pytest.raises(WorkflowError, match="optimizer 'yogi'"):
        FedOpt(optimizer="yogi").restore(snapshot)
    with pytest.raises(WorkflowError, match="FedAdam"):
        FedYogi().restore(FedAdam().snapshot())


def test_defaults() -> None:
    assert FedAvgM().server_lr == 1.0
    assert FedAdam().server_lr == FedYogi().server_lr == FedAdagrad().server_lr == 0.01
    assert FedOpt().optimizer == "adam"
    assert FedAdam(optimizer="adam").optimizer == "adam"


@pytest.mark.parametrize(
    "args",
    [
        {"optimizer": "rmsprop"},
        {"server_lr": 0.0},
        {"server_lr": float("nan")},
        {"beta1": 1.0},
        {"beta2": -0.1},
        {"tau": 0.0},
        {"num_rounds": 0},
    ],
)
def test_invalid_arguments(args: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FedOpt(**args)  # type: ignore[arg-type]


def test_alias_refuses_another_optimizer() -> None:
    with pytest.raises(ValueError, match="FedAdam always uses optimizer 'adam'"):
        FedAdam(optimizer="yogi")


def test_fedavg_arguments_pass_through(tmp_path: Path) -> None:
    fed = Federation(SITES, _handlers(), tmp_path)
    workflow = FedAdam(num_rounds=2, min_clients=4, final_validation=False)
    assert (workflow.num_rounds, workflow.min_clients, workflow.final_validation) == (2, 4, False)
    with pytest.raises(WorkflowError, match="3 sites connected, min_clients is 4"):
        workflow.run(fed.context(initial=_initial()))
