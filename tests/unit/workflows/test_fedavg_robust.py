"""FedAvg with a robust aggregator and with client sampling, through the workflow harness."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from workflow_harness import Federation, SiteFn, site_number

from fedra.core import FLModel
from fedra.workflows import FedAvg

SITES = [f"site-{i}" for i in range(1, 11)]
W0 = np.array([0.0, 1.0, -2.0, 0.5])


def _train(site: str, model: FLModel) -> FLModel:
    """Sites 1-4 add their number; site 5 is Byzantine and adds 1000."""
    assert model.params is not None
    n = site_number(site)
    step = 1000.0 if n == 5 else float(n)
    return FLModel(params={k: v + step for k, v in model.params.items()}, meta={"num_samples": n})


def _handlers() -> dict[str, SiteFn]:
    return {"train": _train, "validate": lambda s, m: FLModel(meta={"num_samples": 1})}


def _final(fed: Federation) -> np.ndarray:
    model = fed.store.load_model("final")
    assert model is not None and model.params is not None
    return model.params["w"]


def _trained_per_round(fed: Federation) -> dict[int, list[str]]:
    rounds: dict[int, list[str]] = defaultdict(list)
    for task in fed.delivered:
        if task.name == "train":
            assert task.data.current_round is not None
            rounds[task.data.current_round].append(task.site)
    return {r: sorted(sites) for r, sites in rounds.items()}


@pytest.mark.parametrize(
    ("aggregator", "args", "step"),
    [
        ("median", {}, 3.0),  # median of 1, 2, 3, 4, 1000
        ("trimmed_mean", {"trim_ratio": 0.2}, 3.0),  # mean of 2, 3, 4
        ("krum", {"num_byzantine": 1, "multi": 2}, 2.5),  # mean of 2, 3
        ("weighted", {}, (1 + 4 + 9 + 16 + 5000) / 15),
    ],
)
def test_robust_aggregator_in_fedavg(
    tmp_path: Path, aggregator: str, args: dict[str, object], step: float
) -> None:
    fed = Federation(SITES[:5], _handlers(), tmp_path)
    FedAvg(
        num_rounds=2, wait_time_after_min_received=0, aggregator=aggregator, aggregator_args=args
    ).run(fed.context(initial=FLModel(params={"w": W0.copy()})))
    np.testing.assert_allclose(_final(fed), W0 + 2 * step, rtol=1e-12)


def test_median_in_fedavg_is_the_coordinatewise_median(tmp_path: Path) -> None:
    def train(site: str, model: FLModel) -> FLModel:
        n = site_number(site)
        return FLModel(params={"w": np.array([n, -(n**2), 10.0 * (n == 2)])})

    fed = Federation(SITES[:4], {"train": train}, tmp_path)
    FedAvg(num_rounds=1, aggregator="median", final_validation=False).run(
        fed.context(initial=FLModel(params={"w": np.zeros(3)}))
    )
    expected = np.median([[n, -(n**2), 10.0 * (n == 2)] for n in range(1, 5)], axis=0)
    np.testing.assert_allclose(_final(fed), expected)


@pytest.mark.parametrize(
    ("fraction", "min_clients", "count"), [(0.3, 1, 3), (0.25, 1, 2), (0.1, 4, 4), (0.55, 2, 6)]
)
def test_sampling_is_reproducible_and_varies(
    tmp_path: Path, fraction: float, min_clients: int, count: int
) -> None:
    def run(seed: int, name: str) -> dict[int, list[str]]:
        fed = Federation(SITES, _handlers(), tmp_path / name)
        FedAvg(
            num_rounds=4,
            min_clients=min_clients,
            wait_time_after_min_received=0,
            sample_fraction=fraction,
            sample_seed=seed,
        ).run(fed.context(initial=FLModel(params={"w": W0.copy()})))
        return _trained_per_round(fed)

    first, again, other = run(1, "a"), run(1, "b"), run(2, "c")
    assert first == again
    assert first != other
    assert sorted(first) == [1, 2, 3, 4]
    assert all(len(sites) == count for sites in first.values())
    assert len({tuple(sites) for sites in first.values()}) > 1


def test_sampling_independent_of_site_order(tmp_path: Path) -> None:
    chosen = []
    for name, sites in (("fwd", SITES), ("rev", SITES[::-1])):
        fed = Federation(sites, _handlers(), tmp_path / name)
        FedAvg(num_rounds=3, sample_fraction=0.4, final_validation=False).run(
            fed.context(initial=FLModel(params={"w": W0.copy()}))
        )
        chosen.append(_trained_per_round(fed))
    assert chosen[0] == chosen[1]


def test_defaults_train_every_site_every_round(tmp_path: Path) -> None:
    fed = Federation(SITES[:4], _handlers(), tmp_path)
    workflow = FedAvg(num_rounds=2, wait_time_after_min_received=0)
    assert (workflow.aggregator, workflow.sample_fraction) == ("weighted", 1.0)
    workflow.run(fed.context(initial=FLModel(params={"w": W0.copy()})))
    assert _trained_per_round(fed) == {1: SITES[:4], 2: SITES[:4]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aggregator": "mean"},
        {"aggregator": "krum"},  # num_byzantine missing
        {"aggregator": "trimmed_mean", "aggregator_args": {"trim_ratio": 0.9}},
        {"sample_fraction": 0.0},
        {"sample_fraction": 1.5},
        {"sample_fraction": True},
        {"sample_seed": 1.5},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        FedAvg(**kwargs)  # type: ignore[arg-type]


def test_unknown_aggregator_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"median.*trimmed_mean.*weighted"):
        FedAvg(aggregator="mean")
