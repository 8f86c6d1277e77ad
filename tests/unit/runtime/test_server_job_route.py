"""The server job process's routing of what its parent sends (:func:`_route`, :func:`_read`)
into a real TaskBoard, while a workflow thread waits on a broadcast."""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel, RunAborted, Task, TaskResult
from fedra.protocol import (
    Abort,
    Go,
    Log,
    Result,
    SiteFailed,
    SiteLost,
    Sites,
    TaskLost,
    encode,
)
from fedra.runtime.server_job import _read, _route
from fedra.serverapp import TaskBoard
from fedra.transport import ChannelClosed
from fedra.wire import Envelope

W4 = FLModel(params={"w": np.zeros(4, np.float32)})


class Tracking:
    """Records the metrics the job is given."""

    def __init__(self) -> None:
        self.added: list[tuple[str, str, float, int | None]] = []

    def add(self, site: str, key: str, value: float, step: int | None) -> None:
        self.added.append((site, key, value, step))


class Round:
    """A workflow's broadcast to ``sites`` in a thread of its own; its tasks as they go out."""

    def __init__(self, sites: tuple[str, ...] = ("a", "b")) -> None:
        self.delivered: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self.board = TaskBoard(list(sites), self.delivered.put, job_id="j1", check_results=True)
        self.results: list[TaskResult] = []
        self.error: BaseException | None = None
        self.tasks: dict[str, Task] = {}
        self._thread = threading.Thread(target=self._run, args=(sites,), daemon=True)
        self._thread.start()
        for _ in sites:
            task = self.delivered.get(timeout=10)
            self.tasks[task.site] = task

    def _run(self, sites: tuple[str, ...]) -> None:
        try:
            for result in self.board.broadcast("train", W4, list(sites)):
                self.results.append(result)
        except BaseException as exc:
            self.error = exc

    def result(self, site: str, **fields: Any) -> Result:
        return Result("j1", self.tasks[site].id, "train", site=site, **fields)

    def end(self) -> list[TaskResult]:
        """The round's results, once every task is answered or given up."""
        self._thread.join(10)
        assert not self._thread.is_alive(), "the round still waits"
        return self.results


def route(message: object, model: FLModel | None = None, board: TaskBoard | None = None) -> Any:
    go = threading.Event()
    tracking = Tracking()
    held = _route(message, model, board or TaskBoard(["a"], lambda _t: None), tracking, go)  # type: ignore[arg-type]
    return held, go, tracking


# -- results --------------------------------------------------------------------------------
def test_an_accepted_result_reaches_the_workflow_and_holds_the_slot() -> None:
    round_ = Round()
    model = FLModel(params={"w": np.ones(4, np.float32)})
    held, _, _ = route(round_.result("a"), model, round_.board)
    assert held is True
    held, _, _ = route(round_.result("b"), W4, round_.board)
    results = round_.end()
    assert [r.site for r in results] == ["a", "b"]
    assert results[0].data is model and results[0].ok


def test_a_failed_task_reaches_the_workflow_as_an_error_without_its_model() -> None:
    round_ = Round(("a",))
    held, _, _ = route(round_.result("a", error="CUDA out of memory"), W4, round_.board)
    assert held is True
    [result] = round_.end()
    assert result.error == "CUDA out of memory" and result.data is None


def test_a_result_for_no_outstanding_task_is_refused_and_frees_the_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    round_ = Round(("a",))
    caplog.set_level("INFO", "fedra.server_job")
    held, _, _ = route(Result("j1", "t-unknown", "train", site="a"), W4, round_.board)
    assert held is False
    assert "result refused: task t-unknown is not outstanding" in caplog.text
    route(round_.result("a"), W4, round_.board)
    held, _, _ = route(round_.result("a"), W4, round_.board)  # a second time
    assert held is False
    assert len(round_.end()) == 1


def test_a_result_from_another_site_is_refused() -> None:
    round_ = Round()
    task_b = round_.tasks["b"].id
    held, _, _ = route(Result("j1", task_b, "train", site="a"), W4, round_.board)
    assert held is False and round_.board.is_outstanding(task_b)
    route(round_.result("a"), W4, round_.board)
    route(round_.result("b"), W4, round_.board)
    assert len(round_.end()) == 2


def test_a_result_that_does_not_fit_its_task_counts_as_answered_without_a_result() -> None:
    round_ = Round()
    odd = FLModel(params={"w": np.zeros(5, np.float32)})
    held, _, _ = route(round_.result("a"), odd, round_.board)
    assert held is False
    route(round_.result("b"), W4, round_.board)
    assert [r.site for r in round_.end()] == ["b"]


# -- tasks and sites given up ---------------------------------------------------------------
def test_a_lost_task_is_given_up_and_the_round_goes_on() -> None:
    round_ = Round()
    held, _, _ = route(TaskLost(round_.tasks["a"].id), None, round_.board)
    assert held is False and not round_.board.is_outstanding(round_.tasks["a"].id)
    route(round_.result("b"), W4, round_.board)
    assert [r.site for r in round_.end()] == ["b"]


def test_a_site_that_left_costs_all_its_tasks(caplog: pytest.LogCaptureFixture) -> None:
    round_ = Round()
    caplog.set_level("INFO", "fedra.server_job")
    route(SiteLost("b"), None, round_.board)
    assert "site b left: 1 outstanding tasks given up" in caplog.text
    route(round_.result("a"), W4, round_.board)
    assert [r.site for r in round_.end()] == ["a"]


def test_a_site_whose_job_process_failed_answers_with_its_detail() -> None:
    round_ = Round()
    route(SiteFailed("a", "Traceback: killed"), None, round_.board)
    route(round_.result("b"), W4, round_.board)
    results = round_.end()
    assert [(r.site, r.error) for r in results] == [("a", "Traceback: killed"), ("b", None)]


def test_sites_now_replace_the_boards_sites() -> None:
    board = TaskBoard(["a", "b"], lambda _t: None)
    held, _, _ = route(Sites(("b", "c")), None, board)
    assert held is False and board.sites() == ["b", "c"]


# -- the run --------------------------------------------------------------------------------
def test_go_lets_the_workflow_begin() -> None:
    held, go, _ = route(Go())
    assert held is False and go.is_set()


def test_abort_stops_the_waiting_round_and_lets_the_workflow_go() -> None:
    round_ = Round()
    held, go, _ = route(Abort("by an admin"), None, round_.board)
    assert held is False and go.is_set()
    round_.end()
    assert isinstance(round_.error, RunAborted) and "by an admin" in str(round_.error)
    assert round_.board.aborted()


def test_a_log_entry_goes_to_tracking() -> None:
    held, go, tracking = route(Log("j1", "loss", 0.25, 3, site="a"))
    assert held is False and not go.is_set()
    assert tracking.added == [("a", "loss", 0.25, 3)]


def test_anything_else_is_ignored() -> None:
    board = TaskBoard(["a"], lambda _t: None)
    held, go, tracking = route(object(), None, board)
    assert held is False and not go.is_set() and tracking.added == []
    assert board.sites() == ["a"] and not board.aborted()


# -- the reader -----------------------------------------------------------------------------
class Feed:
    """A channel handing out the given envelopes, then reporting the parent gone."""

    def __init__(self, envelopes: list[Envelope]) -> None:
        self.left = list(envelopes)

    def recv(self) -> Envelope:
        if not self.left:
            raise ChannelClosed("the parent went away")
        return self.left.pop(0)


def read(
    feed: Feed, board: TaskBoard, slot: threading.Semaphore
) -> tuple[threading.Event, threading.Event]:
    """Run the reader to its end; whether it let the workflow go, and said the parent gone."""
    go, gone = threading.Event(), threading.Event()
    _read(feed, board, Tracking(), go, slot, gone)  # type: ignore[arg-type]
    return go, gone


def test_the_reader_stops_at_an_abort_and_reads_nothing_after_it() -> None:
    board = TaskBoard(["a"], lambda _t: None)
    feed = Feed([encode(Sites(("a", "b"))), encode(Abort("stop")), encode(Sites(("c",)))])
    slot = threading.Semaphore(1)
    go, gone = read(feed, board, slot)
    assert go.is_set() and gone.is_set() and board.aborted()
    assert board.sites() == ["a", "b"] and len(feed.left) == 1
    assert slot.acquire(blocking=False)  # nothing holds it


def test_the_reader_aborts_the_run_when_the_parent_goes_away() -> None:
    board = TaskBoard(["a"], lambda _t: None)
    go, gone = read(Feed([]), board, threading.Semaphore(1))
    assert go.is_set() and gone.is_set() and board.aborted()


def test_a_refused_result_gives_the_readers_slot_back() -> None:
    board = TaskBoard(["a"], lambda _t: None)
    slot = threading.Semaphore(1)
    feed = Feed([encode(Result("j1", "t1", "train", site="a"), W4), encode(Abort())])
    read(feed, board, slot)
    assert slot.acquire(blocking=False) and not slot.acquire(blocking=False)


def test_an_accepted_result_holds_the_readers_slot_until_the_workflow_is_done_with_it() -> None:
    slot = threading.Semaphore(1)
    delivered: queue.SimpleQueue[Task] = queue.SimpleQueue()
    board = TaskBoard(["a"], delivered.put, consumed=lambda _r: slot.release())
    got, proceed = threading.Event(), threading.Event()

    def workflow() -> None:
        for _result in board.broadcast("train", W4):
            got.set()
            proceed.wait(10)  # the workflow is busy with it

    runner = threading.Thread(target=workflow, daemon=True)
    runner.start()
    task = delivered.get(timeout=10)
    feed = Feed([encode(Result("j1", task.id, "train", site="a"), W4), encode(Abort())])
    reader = threading.Thread(
        target=_read,
        args=(feed, board, Tracking(), threading.Event(), slot, threading.Event()),
        daemon=True,
    )
    reader.start()
    assert got.wait(10)
    assert len(feed.left) == 1  # the abort waits: the result in the workflow holds the slot
    proceed.set()  # consumed: the slot is given back, the reader reads on
    reader.join(10)
    runner.join(10)
    assert not reader.is_alive() and not runner.is_alive() and feed.left == []


def test_each_round_reports_the_sites_it_counted() -> None:
    from fedra.protocol import FROM_SERVER_JOB, Round, decode
    from fedra.runtime.server_job import _Reporter

    sent: list[Envelope] = []

    class Channel:
        def send(self, env: Envelope) -> None:
            sent.append(env)

    recorded = iter([1, 2])  # the run's history: one record, then two
    reporter = _Reporter(Channel(), lambda: next(recorded))  # type: ignore[arg-type]
    reporter.round_started("FedAvg", 1, 2, 2)
    reporter.result_received("FedAvg", 1, "site-2")
    reporter.round_finished("FedAvg", 1, {"mean": 1.0})
    reporter.round_started("FedAvg", 2, 2, 2)
    reporter.result_received("FedAvg", 2, "site-1")
    reporter.result_received("FedAvg", 2, "site-2")
    reporter.round_finished("FedAvg", 2, {})
    rounds = [decode(env, FROM_SERVER_JOB) for env in sent]
    assert all(isinstance(r, Round) for r in rounds)
    assert [r.sites for r in rounds] == [("site-2",), ("site-1", "site-2")]  # type: ignore[union-attr]
    assert [r.index for r in rounds] == [0, 1]  # type: ignore[union-attr]
