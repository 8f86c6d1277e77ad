"""TaskBoard's consumed hook: every accepted result is reported once, read or not."""

from __future__ import annotations

from fedra.core import FLModel, Task, TaskResult
from fedra.serverapp import TaskBoard

SITES = ["a", "b", "c"]


class Answering:
    """A board whose sites answer each task as soon as it is delivered."""

    def __init__(self, answer: bool = True) -> None:
        self.delivered: list[Task] = []
        self.consumed: list[str] = []
        self.answer = answer
        self.board = TaskBoard(SITES, self.deliver, consumed=lambda r: self.consumed.append(r.site))

    def deliver(self, task: Task) -> None:
        self.delivered.append(task)
        if self.answer:
            result = TaskResult(task.id, task.name, task.site, data=FLModel())
            assert self.board.submit(result).accepted


def test_consumed_follows_the_reader_one_result_behind() -> None:
    sites = Answering()
    seen: list[str] = []
    for result in sites.board.broadcast("train", FLModel()):
        assert sites.consumed == seen  # the current result is not reported yet
        seen.append(result.site)
    assert sorted(seen) == SITES
    assert sites.consumed == seen


def test_results_dropped_unread_are_still_reported() -> None:
    sites = Answering()
    iterator = iter(sites.board.broadcast("train", FLModel()))
    next(iterator)
    assert sites.consumed == []
    iterator.close()  # the workflow stops reading (as send() does after one result)
    assert sorted(sites.consumed) == SITES


def test_refused_results_are_not_reported() -> None:
    sites = Answering(answer=False)
    assert list(sites.board.broadcast("train", FLModel(), ["a"], timeout=0.0)) == []
    late = TaskResult(sites.delivered[0].id, "train", "a", data=FLModel())
    assert not sites.board.submit(late).accepted
    assert sites.consumed == []


def test_deliver_many_gets_a_whole_broadcast_at_once() -> None:
    batches: list[list[Task]] = []
    singles: list[Task] = []
    board = TaskBoard(SITES, singles.append, deliver_many=batches.append)
    shared = FLModel(metrics={"x": 1})
    assert list(board.broadcast("train", shared, timeout=0.0)) == []
    assert len(batches) == 1 and not singles
    assert [t.site for t in batches[0]] == SITES
    assert all(t.data is shared for t in batches[0])
    assert len({t.id for t in batches[0]}) == 3
    list(board.broadcast("train", shared, ["b"], timeout=0.0))
    assert [t.site for t in singles] == ["b"]  # one target: the plain path
