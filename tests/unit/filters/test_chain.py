"""Filter chains: order of the job's and the site's filters, and the context."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedra.core import FLModel
from fedra.filters import (
    FILTERS,
    Filter,
    FilterChain,
    FilterContext,
    GaussianPrivacy,
    RejectNonFinite,
    wrap_chains,
)


class Recorder:
    """A filter that records its name in the model's meta and in a shared log."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def __call__(self, model: FLModel, ctx: FilterContext) -> FLModel:
        self.log.append(self.name)
        return model


def _ctx(direction: str = "task_result") -> FilterContext:
    return FilterContext("site-1", "train", direction, 1, np.random.default_rng(0))  # type: ignore[arg-type]


def test_chain_applies_in_order() -> None:
    log: list[str] = []
    chain = FilterChain([Recorder("a", log), Recorder("b", log), Recorder("c", log)])
    chain(FLModel(params={}), _ctx())
    assert log == ["a", "b", "c"]
    assert len(chain) == 3


def test_results_run_job_first_then_site() -> None:
    log: list[str] = []
    site = [Recorder("site1", log), Recorder("site2", log)]
    job = [Recorder("job1", log)]
    wrap_chains(site, job, "task_result")(FLModel(params={}), _ctx("task_result"))
    assert log == ["job1", "site1", "site2"]


def test_task_data_runs_site_first_then_job() -> None:
    log: list[str] = []
    site = [Recorder("site", log)]
    job = [Recorder("job1", log), Recorder("job2", log)]
    wrap_chains(site, job, "task_data")(FLModel(params={}), _ctx("task_data"))
    assert log == ["site", "job1", "job2"]


def test_wrap_chains_refuses_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        wrap_chains([], [], "sideways")  # type: ignore[arg-type]


def test_context_is_frozen() -> None:
    ctx = _ctx()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.site = "other"  # type: ignore[misc]


def test_builtins_satisfy_protocol_and_registry() -> None:
    assert isinstance(RejectNonFinite(), Filter)
    assert isinstance(GaussianPrivacy(1.0, 0.0), Filter)
    assert set(FILTERS) == {
        "ClipNorm",
        "Dequantize",
        "ExcludeVars",
        "GaussianPrivacy",
        "HEDecrypt",
        "HEEncrypt",
        "IncludeVars",
        "PercentilePrivacy",
        "Quantize",
        "RejectNonFinite",
        "SVTPrivacy",
    }
    assert all(name == cls.__name__ for name, cls in FILTERS.items())
