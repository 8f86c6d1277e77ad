"""Helpers the job store tests share: racing threads, a populated store, a promotion mid-writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fedra.core import InvalidTransition, JobStatus
from fedra.jobstore import JobRecord, JobStore, StaleSession

S = JobStatus
#: A small valid meta.json.
META: dict[str, Any] = {"name": "hello", "deploy_map": {"app": ["@ALL"]}}


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run the calls at once from threads; return each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def populate(store: JobStore) -> list[JobRecord]:
    """Two jobs: one failed with a history, failure, run info and a file; one just submitted."""
    done = store.create(META, b"zip-1", "alice")
    for status in (S.DISPATCHED, S.RUNNING, S.FINISHED_EXECUTION_EXCEPTION):
        store.transition(done.job_id, status, f"reason for {status.value}")
    store.set_failure(done.job_id, {"site": "site-1", "task": "train", "traceback": "tb"})
    store.update_run_info(done.job_id, {"sites": ["site-1"], "timings": {"start": 1.5}})
    (store.workspace(done.job_id) / "model.npz").write_bytes(b"weights")
    store.create({**META, "name": "second"}, b"zip-2", "bob", job_id="second")
    return store.list()


def check_reopened(reopened: JobStore, before: list[JobRecord]) -> None:
    """``reopened`` (a store opened again on :func:`populate`'s data) kept it all and goes on."""
    assert reopened.list() == before
    first = before[0]
    assert reopened.get(first.job_id) == first
    assert [c.reason for c in first.history][1:] == [
        "reason for DISPATCHED",
        "reason for RUNNING",
        "reason for FINISHED:EXECUTION_EXCEPTION",
    ]
    assert first.failure == {"site": "site-1", "task": "train", "traceback": "tb"}
    assert first.run_info == {"sites": ["site-1"], "timings": {"start": 1.5}}
    assert reopened.job_zip(first.job_id) == b"zip-1"
    assert (reopened.workspace(first.job_id) / "model.npz").read_bytes() == b"weights"
    # The history goes on where it stopped.
    reopened.transition("second", S.DISPATCHED, "after restart")
    assert [c.status for c in reopened.get("second").history] == [S.SUBMITTED, S.DISPATCHED]


def check_one_wins_each_race(first: JobStore, second: JobStore) -> None:
    """Two stores on one database (two servers) race for 10 jobs: one wins each, no errors."""
    jobs = [first.create(META, b"zip", "alice").job_id for _ in range(10)]
    wins: dict[str, list[JobStatus]] = {job: [] for job in jobs}

    def run(store: JobStore, target: JobStatus) -> None:
        for job in jobs:
            try:
                store.transition(job, target, "race", expected=S.SUBMITTED)
                wins[job].append(target)
            except InvalidTransition:
                pass

    results = run_together(
        lambda: run(first, S.FINISHED_ABORTED), lambda: run(second, S.DISPATCHED)
    )
    assert results == [None, None]  # no error but the refused transitions
    for job in jobs:
        assert len(wins[job]) == 1, wins[job]
        record = second.get(job)
        assert record.status is wins[job][0]
        assert len(record.history) == 2


def check_cut_off_by_claim(
    write: Callable[[int], object], claim: Callable[[], object], refusals: int
) -> int:
    """Write from a thread while ``claim`` promotes another session; return the first refused.

    ``write(i)`` is called for i = 0, 1, ... until ``refusals`` calls raised StaleSession;
    ``claim()`` runs once five writes are done. Checks the writes were cut off at one point:
    all before it succeeded, all after it were refused, and the point lies between the start
    of the claim and its end (writes done before the claim stand, writes begun after it
    returned are refused).
    """
    outcomes: list[bool] = []
    progress = threading.Condition()
    stop = threading.Event()

    def write_until_refused() -> None:
        i = 0
        while not stop.is_set():
            try:
                write(i)
                ok = True
            except StaleSession:
                ok = False
            with progress:
                outcomes.append(ok)
                progress.notify_all()
            if outcomes.count(False) == refusals:
                return
            i += 1

    writer = threading.Thread(target=write_until_refused)
    writer.start()
    try:
        with progress:
            assert progress.wait_for(lambda: len(outcomes) >= 5, timeout=30)
            before_claim = len(outcomes)
        claim()
        with progress:
            after_claim = len(outcomes)
        writer.join(timeout=60)
    finally:
        stop.set()
        writer.join()
    assert False in outcomes, "no write was refused after the claim"
    first_refused = outcomes.index(False)
    assert outcomes[first_refused:] == [False] * refusals
    assert all(outcomes[:first_refused])
    assert before_claim <= first_refused <= after_claim + 1
    return first_refused
