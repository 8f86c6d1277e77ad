"""FedAvg says (in the server's log) when a site puts num_samples in metrics, or sends params
back on a validate task: once per site, whatever the number of rounds."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from workflow_harness import Federation

from fedra.core import FLModel
from fedra.workflows import FedAvg

SITES = ["site-a", "site-b"]


def _handlers() -> dict[str, object]:
    def train(site: str, model: FLModel) -> FLModel:
        assert model.params is not None
        samples = {"num_samples": 10}
        if site == "site-a":  # the mistake: weighted as 1 sample
            return FLModel(params=dict(model.params), metrics=samples)
        return FLModel(params=dict(model.params), meta=samples)

    def validate(site: str, model: FLModel) -> FLModel:
        params = dict(model.params or {}) if site == "site-b" else None  # not used
        return FLModel(params=params, metrics={"acc": 1.0})

    return {"train": train, "validate": validate}


def test_misplaced_results_are_warned_once_per_site(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fedra.workflows import _common

    _common._warned.clear()  # once per site and process: start from none
    fed = Federation(SITES, _handlers(), tmp_path)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="fedra.workflows"):
        FedAvg(num_rounds=3).run(fed.context(initial=FLModel(params={"w": np.zeros(2)})))
    warnings = [r.getMessage() for r in caplog.records if r.name == "fedra.workflows"]
    samples = [w for w in warnings if "num_samples is in the result's metrics" in w]
    assert samples == [samples[0]] and samples[0].startswith("site-a:")
    params = [w for w in warnings if "'validate' task has params" in w]
    assert params == [params[0]] and params[0].startswith("site-b:")
