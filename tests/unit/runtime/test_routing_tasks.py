"""The router's outstanding tasks, looked up by site without a scan of every task."""

from __future__ import annotations

from collections.abc import Iterator

from fedra.protocol import Target
from fedra.runtime.routing import JobLaunched, JobRunning, Router, SiteJoined, SiteLeft, TasksOut
from fedra.runtime.routing_tasks import OutstandingTask, TaskTable
from fedra.serverapp.resultspec import Expectation

ANY = Expectation.of_task(None)
SITES = tuple(f"site-{i}" for i in range(1000))


class NoScan(TaskTable):
    """A table whose every walk over all tasks fails the test."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("walked every task")

    def values(self):  # type: ignore[no-untyped-def,override]
        raise AssertionError("walked every task")

    def items(self):  # type: ignore[no-untyped-def,override]
        raise AssertionError("walked every task")


def _router_with_a_round() -> Router:
    router = Router()
    for site in SITES:
        router.handle(SiteJoined(site))
    router.handle(JobLaunched("j1", SITES))
    router.handle(JobRunning("j1"))
    router.jobs["j1"].tasks = NoScan()
    targets = tuple(Target(site, f"t-{site}") for site in SITES)
    router.handle(TasksOut("j1", "train", targets, ANY))
    return router


def test_whether_a_site_has_a_task_does_not_walk_every_task() -> None:
    """Before: each upload request and each refused result scanned all N tasks of the job,
    O(N^2) per round."""
    router = _router_with_a_round()
    assert router.has_task("j1", "site-7")
    assert not router.has_task("j1", "nobody")


def test_a_leaving_site_gives_up_its_tasks_only_without_a_walk() -> None:
    router = _router_with_a_round()
    router.handle(SiteLeft("site-7"))
    tasks = router.jobs["j1"].tasks
    assert not router.has_task("j1", "site-7") and "t-site-7" not in tasks
    assert len(tasks) == len(SITES) - 1 and router.has_task("j1", "site-8")


def test_the_table_keeps_its_site_index_in_step() -> None:
    table = TaskTable()
    table["a"] = OutstandingTask("s1", ANY)
    table["b"] = OutstandingTask("s1", ANY)
    table["c"] = OutstandingTask("s2", ANY)
    assert table.of_site("s1") == ["a", "b"] and table.has_site("s2")
    table["b"] = OutstandingTask("s2", ANY)  # the same id again, now at another site
    assert table.of_site("s1") == ["a"] and table.of_site("s2") == ["b", "c"]
    assert table.pop("a") is not None and not table.has_site("s1")
    del table["c"]
    assert dict(table) == {"b": table["b"]} and table.of_site("s2") == ["b"]
    table.clear()
    assert not table and not table.has_site("s2") and table.of_site("s2") == []
