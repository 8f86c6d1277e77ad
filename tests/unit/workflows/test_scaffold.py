"""Scaffold and FedProx workflows against an independent numpy run of the paper's formulas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from workflow_harness import Federation, site_number

from fedra.core import FLModel, Snapshot, WorkflowError
from fedra.job.registry import builtin
from fedra.workflows import (
    CONTROL_PREFIX,
    FEDPROX_MU,
    SCAFFOLD_META,
    FedAvg,
    FedProx,
    Scaffold,
)

SITES = ["site-1", "site-2", "site-3"]
P = CONTROL_PREFIX
RNG = np.random.default_rng(11)
#: Site n's local objective: 0.5*||A_n w - t_n||^2 for w, 0.5*||b - u_n||^2 for b.
A = {n: RNG.normal(size=(4, 3)) for n in (1, 2, 3)}
T = {n: RNG.normal(size=4) for n in (1, 2, 3)}
U = {n: RNG.normal(size=2) for n in (1, 2, 3)}
K, LR = 5, 0.05
X0 = {
    "w": RNG.normal(size=3),
    "b": RNG.normal(size=2).astype(np.float32),
    "count": np.array([3, 7], dtype=np.int64),
}
FLOATS = ("w", "b")

SiteState = dict[int, dict[str, np.ndarray]]


def _grad(n: int, name: str, value: np.ndarray) -> np.ndarray:
    if name == "w":
        return A[n].T @ (A[n] @ value - T[n])
    return value - U[n]


def _local(
    n: int, x: dict[str, np.ndarray], c: dict[str, np.ndarray], ci: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Site n's SCAFFOLD step, in float64: K corrected GD steps, then option II.

    Returns (dy, dc) cast to the params' dtypes, and updates ``ci`` in place."""
    dy: dict[str, np.ndarray] = {"count": np.full_like(x["count"], n)}
    dc: dict[str, np.ndarray] = {}
    for k in FLOATS:
        x64, c64, ci64 = (v[k].astype(np.float64) for v in (x, c, ci))
        y = x64.copy()
        for _ in range(K):
            y = y - LR * (_grad(n, k, y) - ci64 + c64)
        new_ci = ci64 - c64 + (x64 - y) / (K * LR)
        dy[k] = (y - x64).astype(x[k].dtype)
        dc[k] = (new_ci - ci64).astype(x[k].dtype)
        ci[k] = new_ci.astype(x[k].dtype)
    return dy, dc


def _zeros_state() -> SiteState:
    return {n: {k: np.zeros_like(X0[k]) for k in FLOATS} for n in (1, 2, 3)}


def _handlers(
    state: SiteState, seen: list[FLModel] | None = None
) -> dict[str, Callable[..., object]]:
    """Sites running :func:`_local` on what the task carries (c_i kept in ``state``)."""

    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        if seen is not None:
            seen.append(model)
        n = site_number(site)
        prefix = model.meta[SCAFFOLD_META]
        x = {k: v for k, v in model.params.items() if not k.startswith(prefix)}
        c = {k[len(prefix) :]: v for k, v in model.params.items() if k.startswith(prefix)}
        dy, dc = _local(n, x, c, state[n])
        params = dict(dy)
        params.update({prefix + k: v for k, v in dc.items()})
        return FLModel(params=params, params_type="diff", meta={"num_samples": n})

    def validate(site: str, model: FLModel) -> FLModel:
        return FLModel(metrics={"accuracy": 0.5}, meta={"num_samples": 1})

    return {"train": train, "validate": validate}


def _reference(
    rounds: int, server_lr: float, participants: list[list[int]]
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(x, c) after each round: x += lr_g * mean(dy); c += |S|/N * mean(dc), means weighted
    by num_samples = n, in the accumulation dtype FedAvg uses (the param's float dtype)."""
    x = {k: v.copy() for k, v in X0.items()}
    c = {k: np.zeros_like(X0[k]) for k in FLOATS}
    state = _zeros_state()
    history = []
    for r in range(rounds):
        sites = participants[r]
        outs = {n: _local(n, x, c, state[n]) for n in sites}
        total = float(sum(sites))
        new_x: dict[str, np.ndarray] = {}
        for k, v in x.items():
            acc_dtype = np.float64 if k == "count" else v.dtype
            mean = sum(n * outs[n][0][k].astype(acc_dtype) for n in sites) / total
            if k == "count":
                new_x[k] = v + np.rint(mean).astype(np.int64)
            else:
                new_x[k] = (v.astype(np.float64) + server_lr * mean.astype(np.float64)).astype(
                    v.dtype
                )
        for k in FLOATS:
            mean = sum(n * outs[n][1][k].astype(c[k].dtype) for n in sites) / total
            c[k] = (c[k].astype(np.float64) + len(sites) / 3 * mean.astype(np.float64)).astype(
                c[k].dtype
            )
        x = new_x
        history.append(({k: v.copy() for k, v in x.items()}, {k: v.copy() for k, v in c.items()}))
    return history


def _initial() -> FLModel:
    return FLModel(params={k: v.copy() for k, v in X0.items()})


def _params(fed: Federation, name: str) -> dict[str, np.ndarray]:
    model = fed.store.load_model(name)
    assert model is not None and model.params is not None
    return model.params


def _trained(fed: Federation, rounds: int) -> list[list[int]]:
    return [
        sorted(
            site_number(t.site)
            for t in fed.delivered
            if t.name == "train" and t.data.current_round == r
        )
        for r in range(1, rounds + 1)
    ]


@pytest.mark.parametrize(
    ("server_lr", "fraction"), [(1.0, 1.0), (0.7, 2 / 3)], ids=["full", "sampled"]
)
def test_rounds_match_the_reference(tmp_path: Path, server_lr: float, fraction: float) -> None:
    state = _zeros_state()
    seen: list[FLModel] = []
    fed = Federation(SITES, _handlers(state, seen), tmp_path)
    workflow = Scaffold(
        num_rounds=4,
        server_lr=server_lr,
        sample_fraction=fraction,
        sample_seed=3,
        wait_time_after_min_received=0,
    )
    workflow.run(fed.context(initial=_initial()))

    participants = _trained(fed, 4)
    assert all(len(p) == (3 if fraction == 1 else 2) for p in participants)
    expected = _reference(4, server_lr, participants)
    for r, (want_x, want_c) in enumerate(expected, start=1):
        got = _params(fed, f"round-{r:03d}")
        assert set(got) == set(X0)  # the saved models hold no control variates
        assert {k: a.dtype for k, a in got.items()} == {k: a.dtype for k, a in X0.items()}
        np.testing.assert_allclose(got["w"], want_x["w"], rtol=1e-12)
        np.testing.assert_allclose(got["b"], want_x["b"], rtol=1e-6)
        np.testing.assert_array_equal(got["count"], want_x["count"])
        # The c sent in round r+1 is the server's c after round r.
        if r < 4:
            task = next(m for m in seen if m.current_round == r + 1)
            assert task.params is not None
            np.testing.assert_allclose(task.params[P + "w"], want_c["w"], rtol=1e-12)
            np.testing.assert_allclose(task.params[P + "b"], want_c["b"], rtol=1e-6)
    _, final_c = expected[-1]
    snap_c = workflow.snapshot().arrays
    np.testing.assert_allclose(snap_c["c:w"], final_c["w"], rtol=1e-12)
    assert not np.allclose(final_c["w"], 0)  # the control variate really moved
    np.testing.assert_array_equal(_params(fed, "final")["w"], _params(fed, "round-004")["w"])


def test_first_task_carries_zero_control_variates_and_the_prefix(tmp_path: Path) -> None:
    seen: list[FLModel] = []
    fed = Federation(SITES, _handlers(_zeros_state(), seen), tmp_path)
    Scaffold(num_rounds=1, final_validation=False).run(fed.context(initial=_initial()))
    first = seen[0]
    assert first.meta == {SCAFFOLD_META: P}
    assert first.params is not None
    # Control variates for the float params only, zero, in the params' dtypes.
    assert set(first.params) == {"w", "b", "count", P + "w", P + "b"}
    for k in FLOATS:
        assert first.params[P + k].dtype == X0[k].dtype
        np.testing.assert_array_equal(first.params[P + k], np.zeros_like(X0[k]))
        assert not first.params[P + k].flags.writeable


def test_server_c_is_the_weighted_mean_of_site_controls(tmp_path: Path) -> None:
    """With every site in every round, c stays sum(n * c_n) / sum(n) (the paper's invariant)."""
    state = _zeros_state()
    fed = Federation(SITES, _handlers(state), tmp_path)
    workflow = Scaffold(num_rounds=3, final_validation=False)
    workflow.run(fed.context(initial=_initial()))
    c = workflow.snapshot().arrays["c:w"]
    np.testing.assert_allclose(c, sum(n * state[n]["w"] for n in (1, 2, 3)) / 6, rtol=1e-10)


def test_one_round_by_hand(tmp_path: Path) -> None:
    """One site, one param, K=1: every quantity is a line of arithmetic."""
    x0, lr, g = 2.0, 0.5, 3.0  # the site's gradient is the constant g

    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        x, c = model.params["v"], model.params[P + "v"]
        y = x - lr * (g - 0.0 + c)  # c_i = 0 in round 1
        new_ci = 0.0 - c + (x - y) / lr  # = g
        return FLModel(params={"v": y - x, P + "v": new_ci - 0.0}, params_type="diff")

    fed = Federation(["site-1", "site-2"], {"train": train}, tmp_path)
    workflow = Scaffold(num_rounds=1, server_lr=2.0, final_validation=False, sample_fraction=0.5)
    workflow.run(fed.context(initial=FLModel(params={"v": np.array(x0)})))
    # One of the two sites trains: dy = -lr*g = -1.5, so x = 2 + 2.0 * -1.5 = -1;
    # dc = g = 3, so c = (|S|/N) * 3 = (1/2) * 3 = 1.5.
    assert len(fed.rounds_sent("train")) == 1
    assert float(_params(fed, "round-001")["v"]) == -1.0
    assert float(workflow.snapshot().arrays["c:v"]) == 1.5


class Interrupted(Exception):
    """Stands for the server stopping after a checkpoint."""


@pytest.mark.parametrize("k", [1, 3])
def test_snapshot_restore_gives_the_same_model_bit_for_bit(tmp_path: Path, k: int) -> None:
    total = 5
    straight = Federation(SITES, _handlers(_zeros_state()), tmp_path / "straight")
    Scaffold(num_rounds=total).run(straight.context(initial=_initial()))

    # The sites keep their c_i across the server's restart (they are other processes).
    state = _zeros_state()
    interrupted = Federation(SITES, _handlers(state), tmp_path / "restarted")
    seen = 0

    def stop_after_k(snapshot: Snapshot) -> None:
        nonlocal seen
        interrupted.store.save_snapshot(0, snapshot)
        seen += 1
        if seen == k:
            raise Interrupted

    with pytest.raises(Interrupted):
        Scaffold(num_rounds=total).run(
            interrupted.context(initial=_initial(), checkpoint=stop_after_k)
        )
    saved = interrupted.store.load_snapshot()
    assert saved is not None
    assert {"c:w", "c:b", "x:w", "x:b", "x:count"} == set(saved[1].arrays)

    resumed = Federation(SITES, _handlers(state), tmp_path / "restarted")
    workflow = Scaffold(num_rounds=total)
    workflow.restore(saved[1])
    workflow.run(resumed.context(initial=_initial()))
    assert sorted(set(resumed.rounds_sent("train"))) == list(range(k + 1, total + 1))
    for name in ("final", f"round-{total:03d}"):
        a, b = _params(straight, name), _params(resumed, name)
        for key in X0:
            assert a[key].dtype == b[key].dtype
            assert a[key].tobytes() == b[key].tobytes()


def test_restore_without_the_control_variate_differs(tmp_path: Path) -> None:
    """Guards the test above: c matters, so a resume that lost it would be caught."""
    straight = Federation(SITES, _handlers(_zeros_state()), tmp_path / "a")
    first = Scaffold(num_rounds=3)
    first.run(straight.context(initial=_initial()))

    state = _zeros_state()
    part = Federation(SITES, _handlers(state), tmp_path / "b")
    two = Scaffold(num_rounds=2, final_validation=False)
    two.run(part.context(initial=_initial()))
    snap = two.snapshot()
    lost = Snapshot(
        snap.workflow, snap.state, {k: v for k, v in snap.arrays.items() if k[:2] != "c:"}
    )
    rest = Federation(SITES, _handlers(state), tmp_path / "c")
    third = Scaffold(num_rounds=3)
    third.restore(lost)
    third.run(rest.context(initial=_initial()))
    assert not np.array_equal(_params(straight, "final")["w"], _params(rest, "final")["w"])


def test_needs_an_initial_model(tmp_path: Path) -> None:
    fed = Federation(SITES, _handlers(_zeros_state()), tmp_path)
    with pytest.raises(WorkflowError, match="initial global model"):
        Scaffold(num_rounds=1).run(fed.context())


def test_refuses_full_models_from_the_sites(tmp_path: Path) -> None:
    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        return FLModel(params=dict(model.params))  # a FedAvg site: the full model back

    fed = Federation(SITES, {"train": train}, tmp_path)
    with pytest.raises(WorkflowError, match="diff"):
        Scaffold(num_rounds=1).run(fed.context(initial=_initial()))


def test_refuses_results_without_control_variates(tmp_path: Path) -> None:
    def train(site: str, model: FLModel) -> FLModel:
        return FLModel(params={k: np.zeros_like(v) for k, v in X0.items()}, params_type="diff")

    fed = Federation(SITES, {"train": train}, tmp_path)
    with pytest.raises(WorkflowError, match="missing"):
        Scaffold(num_rounds=1).run(fed.context(initial=_initial()))


def test_refuses_a_param_named_with_the_prefix(tmp_path: Path) -> None:
    fed = Federation(SITES, _handlers(_zeros_state()), tmp_path)
    initial = FLModel(params={"w": np.zeros(2), P + "w": np.zeros(2)})
    with pytest.raises(WorkflowError, match="reserves"):
        Scaffold(num_rounds=1).run(fed.context(initial=initial))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), True, "1"])
def test_bad_server_lr(bad: object) -> None:
    with pytest.raises(ValueError, match="server_lr"):
        Scaffold(server_lr=bad)  # type: ignore[arg-type]


def test_registered_for_job_configs() -> None:
    assert builtin("workflow", "Scaffold") is Scaffold
    assert builtin("workflow", "FedProx") is FedProx


# -- FedProx --------------------------------------------------------------------------


def test_fedprox_sends_mu_and_averages_like_fedavg(tmp_path: Path) -> None:
    metas: list[dict[str, object]] = []

    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        metas.append(dict(model.meta))
        n = site_number(site)
        return FLModel(
            params={k: v * np.float32(0.5) + n for k, v in model.params.items()},
            meta={"num_samples": n},
        )

    handlers = {"train": train, "validate": _handlers(_zeros_state())["validate"]}
    initial = {"w": np.arange(4, dtype=np.float32)}
    prox = Federation(SITES, handlers, tmp_path / "prox")
    FedProx(num_rounds=3, mu=0.25).run(prox.context(initial=FLModel(params=dict(initial))))
    assert len(metas) == 9 and all(m == {FEDPROX_MU: 0.25} for m in metas)
    metas.clear()
    plain = Federation(SITES, handlers, tmp_path / "plain")
    FedAvg(num_rounds=3).run(plain.context(initial=FLModel(params=dict(initial))))
    assert all(FEDPROX_MU not in m for m in metas)
    for name in ("round-001", "round-003", "final"):
        assert _params(prox, name)["w"].tobytes() == _params(plain, name)["w"].tobytes()


@pytest.mark.parametrize("bad", [-0.1, float("inf"), True, None])
def test_fedprox_bad_mu(bad: object) -> None:
    with pytest.raises(ValueError, match="mu"):
        FedProx(mu=bad)  # type: ignore[arg-type]
