"""Cyclic weight transfer through the real TaskBoard: order, reproducibility, restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from workflow_harness import Federation, site_number

from fedra.core import FLModel, Snapshot, WorkflowError
from fedra.workflows import Cyclic

SITES = ["site-1", "site-2", "site-3", "site-4", "site-5"]
W0 = np.array([1.0, -1.0, 0.25])


def _step(site: str, params: np.ndarray) -> np.ndarray:
    """What a site does to the model: order-sensitive, so the final model reveals the order."""
    return params * 0.5 + site_number(site)


def _federation(root: Path) -> Federation:
    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        return FLModel(
            params={"w": _step(site, model.params["w"])},
            metrics={"last_site": site},
        )

    return Federation(SITES, {"train": train}, root)


def _visits(fed: Federation) -> list[tuple[int | None, str]]:
    return [(t.data.current_round, t.site) for t in fed.delivered if t.name == "train"]


def _final(fed: Federation) -> np.ndarray:
    model = fed.store.load_model("final")
    assert model is not None and model.params is not None
    return model.params["w"]


def test_fixed_order_passes_model_from_site_to_site(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    ctx = fed.context(initial=FLModel(params={"w": W0.copy()}))
    Cyclic(num_rounds=2).run(ctx)

    assert _visits(fed) == [(r, s) for r in (1, 2) for s in SITES]
    expected = W0.copy()
    for r in (1, 2):
        for site in SITES:
            expected = _step(site, expected)
        round_model = fed.store.load_model(f"round-{r:03d}")
        assert round_model is not None and round_model.params is not None
        np.testing.assert_allclose(round_model.params["w"], expected, rtol=1e-12)
    np.testing.assert_allclose(_final(fed), expected, rtol=1e-12)
    shared = ctx.shared["global"].params
    assert shared is not None
    np.testing.assert_array_equal(shared["w"], _final(fed))


def test_each_site_receives_the_previous_sites_model(tmp_path: Path) -> None:
    received: list[np.ndarray] = []

    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        received.append(model.params["w"].copy())
        return FLModel(params={"w": _step(site, model.params["w"])})

    fed = Federation(SITES[:3], {"train": train}, tmp_path)
    Cyclic(num_rounds=1).run(fed.context(initial=FLModel(params={"w": W0.copy()})))
    np.testing.assert_array_equal(received[0], W0)
    np.testing.assert_allclose(received[1], _step("site-1", W0))
    np.testing.assert_allclose(received[2], _step("site-2", _step("site-1", W0)))


def test_seeded_random_order_is_reproducible(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        fed = _federation(tmp_path / name)
        Cyclic(num_rounds=4, order="random", seed=7).run(
            fed.context(initial=FLModel(params={"w": W0.copy()}))
        )
        runs.append(fed)
    first, second = (_visits(f) for f in runs)
    assert first == second
    assert np.array_equal(_final(runs[0]), _final(runs[1]))
    rounds = [[s for r, s in first if r == n] for n in (1, 2, 3, 4)]
    assert all(sorted(order) == SITES for order in rounds)  # each round visits every site once
    assert any(order != SITES for order in rounds)  # and the order is actually shuffled
    # The final model is the one produced by the visits in that order.
    expected = W0.copy()
    for _, site in first:
        expected = _step(site, expected)
    np.testing.assert_allclose(_final(runs[0]), expected, rtol=1e-12)


def test_different_seeds_give_different_orders(tmp_path: Path) -> None:
    orders = []
    for seed in range(4):
        fed = _federation(tmp_path / str(seed))
        Cyclic(num_rounds=2, order="random", seed=seed).run(
            fed.context(initial=FLModel(params={"w": W0.copy()}))
        )
        orders.append(tuple(_visits(fed)))
    assert len(set(orders)) > 1


class Interrupted(Exception):
    """Stands for the server stopping after a checkpoint."""


@pytest.mark.parametrize("order", ["fixed", "random"])
def test_snapshot_restore_gives_the_same_model(tmp_path: Path, order: str) -> None:
    total, k = 4, 2
    straight = _federation(tmp_path / "straight")
    Cyclic(num_rounds=total, order=order, seed=3).run(
        straight.context(initial=FLModel(params={"w": W0.copy()}))
    )

    interrupted = _federation(tmp_path / "restarted")

    def stop_after_k(snapshot: Snapshot) -> None:
        interrupted.store.save_snapshot(0, snapshot)
        if snapshot.state["round"] == k:
            raise Interrupted

    with pytest.raises(Interrupted):
        Cyclic(num_rounds=total, order=order, seed=3).run(
            interrupted.context(initial=FLModel(params={"w": W0.copy()}), checkpoint=stop_after_k)
        )
    saved = interrupted.store.load_snapshot()
    assert saved is not None

    resumed = _federation(tmp_path / "restarted")
    workflow = Cyclic(num_rounds=total, order=order, seed=3)
    workflow.restore(saved[1])
    workflow.run(resumed.context(initial=FLModel(params={"w": np.zeros(3)})))

    assert _visits(resumed) == [v for v in _visits(straight) if v[0] is not None and v[0] > k]
    assert np.array_equal(_final(resumed), _final(straight))


def test_site_must_return_params(tmp_path: Path) -> None:
    fed = Federation(SITES, {"train": lambda site, model: FLModel()}, tmp_path)
    with pytest.raises(WorkflowError, match="without params"):
        Cyclic(num_rounds=1).run(fed.context(initial=FLModel(params={"w": W0.copy()})))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        Cyclic(num_rounds=0)
    with pytest.raises(ValueError):
        Cyclic(order="alphabetical")
    with pytest.raises(WorkflowError):
        Cyclic().restore(Snapshot("FedAvg", {"round": 1}, {}))


def test_restore_refuses_a_state_without_a_round() -> None:
    with pytest.raises(WorkflowError, match="'round' must be an integer"):
        Cyclic().restore(Snapshot("Cyclic", {"round": None}, {}))
