"""FilteredFleet: the server's result filters over a real TaskBoard."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from fedra.core import FLModel, Task, TaskResult
from fedra.filters import (
    ClipNorm,
    FilterChain,
    FilterContext,
    FilteredFleet,
    RejectNonFinite,
)
from fedra.serverapp import TaskBoard

SITES = ["site-1", "site-2", "site-3", "site-4"]
GLOBAL = {"w": np.zeros(3)}


class Sites:
    """Every site answers at once: ``answer(site, model)`` gives its model, or raises."""

    def __init__(self, answer: Callable[[str, FLModel], FLModel]) -> None:
        self.answer = answer
        self.consumed = 0
        self.board = TaskBoard(SITES, self._deliver, consumed=self._consumed)
        self.submitted = 0

    def _deliver(self, task: Task) -> None:
        try:
            result = TaskResult(
                task.id, task.name, task.site, data=self.answer(task.site, task.data)
            )
        except RuntimeError as exc:
            result = TaskResult(task.id, task.name, task.site, error=str(exc))
        assert self.board.submit(result).accepted
        self.submitted += 1

    def _consumed(self, result: TaskResult) -> None:
        self.consumed += 1


def _poisoned(site: str, model: FLModel) -> FLModel:
    """site-2 sends NaN, site-3 an update of norm 1000, the others +1 everywhere."""
    assert model.params is not None
    w = model.params["w"]
    if site == "site-2":
        return FLModel(params={"w": w + np.nan}, meta={"num_samples": 2})
    if site == "site-3":
        return FLModel(params={"w": w + np.array([600.0, 800.0, 0.0])})
    return FLModel(params={"w": w + 1.0}, metrics={"loss": 0.5})


def _sent(round_num: int = 3) -> FLModel:
    return FLModel(params=GLOBAL, current_round=round_num, total_rounds=5)


def test_rejected_results_are_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sites = Sites(_poisoned)
    fleet = FilteredFleet(sites.board, [RejectNonFinite(), ClipNorm(10.0)])
    with caplog.at_level(logging.WARNING, logger="fedra.filters"):
        results = {r.site: r for r in fleet.broadcast("train", _sent(), min_responses=2)}
    assert sorted(results) == ["site-1", "site-3", "site-4"]
    clipped = results["site-3"].data
    assert clipped is not None and clipped.params is not None
    np.testing.assert_allclose(clipped.params["w"], [6.0, 8.0, 0.0])  # norm 10, same direction
    kept = results["site-1"].data
    assert kept is not None and kept.params is not None and kept.metrics == {"loss": 0.5}
    np.testing.assert_array_equal(kept.params["w"], [1.0, 1.0, 1.0])
    assert [(r.site, r.task_name, r.round) for r in fleet.rejections] == [("site-2", "train", 3)]
    assert "'w'" in fleet.rejections[0].reason
    (record,) = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert "site-2" in record.getMessage() and "NaN" in record.getMessage()
    # Back-pressure: the board heard about every result, the dropped one included.
    assert sites.consumed == sites.submitted == len(SITES)


def test_filters_see_the_sender_the_round_and_the_model_sent() -> None:
    seen: list[FilterContext] = []

    def record(model: FLModel, ctx: FilterContext) -> FLModel:
        seen.append(ctx)
        return model

    sites = Sites(lambda site, model: FLModel(params={"w": np.ones(3)}))
    sent = _sent(round_num=7)
    list(FilteredFleet(sites.board, FilterChain([record])).broadcast("train", sent))
    assert sorted(c.site for c in seen) == SITES
    assert {(c.round, c.task_name, c.direction) for c in seen} == {(7, "train", "task_result")}
    assert all(c.reference is sent.params for c in seen)


def test_error_results_and_metric_only_results_pass() -> None:
    def answer(site: str, model: FLModel) -> FLModel:
        if site == "site-1":
            raise RuntimeError("training crashed")
        return FLModel(metrics={"accuracy": 0.75})

    sites = Sites(answer)
    fleet = FilteredFleet(sites.board, [RejectNonFinite(), ClipNorm(1.0)])
    results = {r.site: r for r in fleet.broadcast("validate", _sent())}
    assert results["site-1"].error == "training crashed"
    assert all(results[s].ok for s in SITES[1:])
    assert not fleet.rejections


def test_send_turns_a_rejection_into_an_error_result() -> None:
    sites = Sites(_poisoned)
    fleet = FilteredFleet(sites.board, [RejectNonFinite()])
    result = fleet.send("train", _sent(), "site-2")
    assert not result.ok and result.site == "site-2"
    assert "rejected by the server's result filters" in (result.error or "")
    assert fleet.send("train", _sent(), "site-4").ok


def test_abandoned_broadcast_releases_every_result() -> None:
    sites = Sites(_poisoned)
    fleet = FilteredFleet(sites.board, [RejectNonFinite()])
    results = fleet.broadcast("train", _sent())
    first = next(iter(results))
    assert first.site == "site-1"
    results.close()  # type: ignore[attr-defined]
    assert sites.consumed == sites.submitted == len(SITES)


def test_the_fleet_underneath_still_decides_sites_and_abort() -> None:
    sites = Sites(_poisoned)
    fleet = FilteredFleet(sites.board, [])
    assert fleet.sites() == SITES
    assert not fleet.aborted()
    sites.board.abort("stop")
    assert fleet.aborted()
