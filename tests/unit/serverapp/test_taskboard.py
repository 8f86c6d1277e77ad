"""TaskBoard: dispatch, results as they arrive, refusals, early stop, timeout and abort."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fedra.core import FLModel, RunAborted, Task, TaskResult, WorkflowError
from fedra.serverapp import TaskBoard

SITES = ["site-a", "site-b", "site-c"]


class Sites:
    """Holds delivered tasks; sites named in ``answer_now`` answer inside deliver."""

    def __init__(self, answer_now: set[str] | None = None) -> None:
        self.answer_now = answer_now or set()
        self.tasks: dict[str, Task] = {}
        self.board = TaskBoard(SITES, self.deliver, job_id="job-1")

    def deliver(self, task: Task) -> None:
        self.tasks[task.site] = task
        if task.site in self.answer_now:
            assert self.board.submit(self.result(task.site)).accepted

    def result(self, site: str, *, as_site: str | None = None) -> TaskResult:
        task = self.tasks[site]
        model = FLModel(metrics={"from": site})
        return TaskResult(task.id, task.name, as_site or site, data=model)


def test_tasks_carry_name_data_job_and_timeout() -> None:
    sites = Sites(answer_now=set(SITES))
    data = FLModel(params={"w": np.ones(2)})
    results = list(sites.board.broadcast("train", data, timeout=30.0))
    assert sorted(r.site for r in results) == SITES
    ids = {t.id for t in sites.tasks.values()}
    assert len(ids) == 3
    for task in sites.tasks.values():
        assert (task.name, task.job_id, task.timeout) == ("train", "job-1", 30.0)
        assert task.data is data
    assert not any(sites.board.is_outstanding(i) for i in ids)


def test_results_yielded_as_they_come() -> None:
    sites = Sites(answer_now={"site-a"})
    stream = sites.board.broadcast("train", FLModel())
    first = next(stream)
    assert first.site == "site-a"
    # The others are still outstanding while the first result is already in hand.
    assert sites.board.is_outstanding(sites.tasks["site-b"].id)
    assert sites.board.is_outstanding(sites.tasks["site-c"].id)
    assert sites.board.submit(sites.result("site-c")).accepted
    assert next(stream).site == "site-c"
    assert sites.board.submit(sites.result("site-b")).accepted
    assert next(stream).site == "site-b"
    with pytest.raises(StopIteration):
        next(stream)


def test_duplicate_result_refused_and_counted_once() -> None:
    sites = Sites(answer_now={"site-a"})
    stream = sites.board.broadcast("train", FLModel())
    seen = [next(stream).site]
    duplicate = sites.board.submit(sites.result("site-a"))
    assert not duplicate.accepted
    assert "not outstanding" in duplicate.reason
    assert sites.board.submit(sites.result("site-b")).accepted
    assert sites.board.submit(sites.result("site-c")).accepted
    seen += [r.site for r in stream]
    assert sorted(seen) == SITES


def test_unknown_task_refused() -> None:
    sites = Sites()
    verdict = sites.board.submit(TaskResult("no-such-task", "train", "site-a", data=FLModel()))
    assert not verdict.accepted
    assert "no-such-task" in verdict.reason


def test_result_from_another_site_refused() -> None:
    sites = Sites(answer_now={"site-a", "site-c"})
    stream = sites.board.broadcast("train", FLModel())
    got = [next(stream).site, next(stream).site]
    forged = sites.board.submit(sites.result("site-b", as_site="site-c"))
    assert not forged.accepted
    assert "site-b" in forged.reason
    # The task is still outstanding for its real site.
    assert sites.board.submit(sites.result("site-b")).accepted
    got += [r.site for r in stream]
    assert sorted(got) == SITES


def test_min_responses_stops_early_and_later_results_refused() -> None:
    sites = Sites(answer_now={"site-a", "site-b"})
    start = time.monotonic()
    results = list(
        sites.board.broadcast("train", FLModel(), min_responses=2, wait_after_min=0.0, timeout=30)
    )
    assert time.monotonic() - start < 5  # did not wait for the timeout
    assert sorted(r.site for r in results) == ["site-a", "site-b"]
    late = sites.board.submit(sites.result("site-c"))
    assert not late.accepted
    assert not sites.board.is_outstanding(sites.tasks["site-c"].id)


def test_results_accepted_before_the_window_closes_are_all_yielded() -> None:
    # Every site answers inside deliver, so all results are accepted before the generator
    # looks at its queue; the early stop must not drop results the board already accepted.
    sites = Sites(answer_now=set(SITES))
    results = list(sites.board.broadcast("train", FLModel(), min_responses=1, wait_after_min=0))
    assert sorted(r.site for r in results) == SITES


@pytest.mark.parametrize("attempt", range(20))
def test_accepted_means_yielded_under_concurrent_submits(attempt: int) -> None:
    # A worker answers while the broadcast stops early: whatever the interleaving, the
    # results yielded are exactly those the board accepted.
    names = [f"s{i}" for i in range(16)]
    tasks: list[Task] = []
    verdicts: dict[str, bool] = {}

    def answer_all() -> None:
        for task in tasks:
            result = TaskResult(task.id, task.name, task.site, data=FLModel())
            verdicts[task.site] = board.submit(result).accepted

    worker = threading.Thread(target=answer_all)

    def deliver(task: Task) -> None:
        tasks.append(task)
        if len(tasks) == len(names):
            worker.start()

    board = TaskBoard(names, deliver)
    yielded = [
        r.site for r in board.broadcast("train", FLModel(), min_responses=1, wait_after_min=0)
    ]
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(verdicts) == len(names)
    assert yielded
    assert sorted(yielded) == sorted(site for site, ok in verdicts.items() if ok)


def test_result_within_wait_after_min_accepted() -> None:
    sites = Sites(answer_now={"site-a"})
    stream = sites.board.broadcast("train", FLModel(), min_responses=1, wait_after_min=60.0)
    got = [next(stream).site]
    assert sites.board.submit(sites.result("site-b")).accepted
    assert sites.board.submit(sites.result("site-c")).accepted
    got += [r.site for r in stream]  # ends as soon as every target answered
    assert sorted(got) == SITES


def test_min_responses_larger_than_targets_waits_for_all() -> None:
    sites = Sites(answer_now=set(SITES))
    results = list(sites.board.broadcast("train", FLModel(), min_responses=10))
    assert len(results) == 3


def test_timeout_stops_waiting() -> None:
    sites = Sites(answer_now={"site-b"})
    start = time.monotonic()
    results = list(sites.board.broadcast("train", FLModel(), timeout=0.05))
    elapsed = time.monotonic() - start
    assert [r.site for r in results] == ["site-b"]
    assert 0.05 <= elapsed < 5
    assert not sites.board.submit(sites.result("site-a")).accepted


def test_send_returns_the_answer_or_raises_on_timeout() -> None:
    sites = Sites(answer_now={"site-a"})
    result = sites.board.send("submit_model", FLModel(), "site-a")
    assert result.site == "site-a"
    assert list(sites.tasks) == ["site-a"]
    with pytest.raises(WorkflowError, match="site-b"):
        sites.board.send("submit_model", FLModel(), "site-b", timeout=0.01)


def test_targets_subset_only() -> None:
    sites = Sites(answer_now=set(SITES))
    results = list(sites.board.broadcast("validate", FLModel(), ["site-c"]))
    assert [r.site for r in results] == ["site-c"]
    assert list(sites.tasks) == ["site-c"]


def test_unknown_target_raises() -> None:
    sites = Sites()
    with pytest.raises(WorkflowError, match="site-x"):
        sites.board.broadcast("train", FLModel(), ["site-a", "site-x"])
    assert sites.tasks == {}


def test_abort_while_broadcast_waits() -> None:
    delivered = threading.Event()
    tasks: list[Task] = []

    def deliver(task: Task) -> None:
        tasks.append(task)
        if len(tasks) == len(SITES):
            delivered.set()

    board = TaskBoard(SITES, deliver)
    outcome: list[BaseException | list[TaskResult]] = []

    def wait_for_results() -> None:
        try:
            outcome.append(list(board.broadcast("train", FLModel())))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_results)
    waiter.start()
    assert delivered.wait(timeout=10)
    assert not board.aborted()
    board.abort("operator said stop")
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], RunAborted)
    assert "operator said stop" in str(outcome[0])
    assert board.aborted()
    assert not any(board.is_outstanding(t.id) for t in tasks)
    assert not board.submit(TaskResult(tasks[0].id, "train", tasks[0].site, FLModel())).accepted


def test_broadcast_after_abort_raises_without_delivering() -> None:
    sites = Sites(answer_now=set(SITES))
    sites.board.abort("stopped")
    with pytest.raises(RunAborted, match="stopped"):
        list(sites.board.broadcast("train", FLModel()))
    assert sites.tasks == {}
