"""The job state machine: the transition table, final states and the recorded history."""

from __future__ import annotations

import itertools
import time

import pytest

from fedra.core import (
    TRANSITIONS,
    InvalidTransition,
    JobLifecycle,
    JobStatus,
    can_transition,
    transition,
)

ALL_PAIRS = list(itertools.product(JobStatus, JobStatus))
FINAL = {
    JobStatus.FINISHED_COMPLETED,
    JobStatus.FINISHED_ABORTED,
    JobStatus.FINISHED_EXECUTION_EXCEPTION,
    JobStatus.FAILED_TO_RUN,
}


def test_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    for targets in TRANSITIONS.values():
        assert targets <= set(JobStatus)


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS, ids=lambda s: s.value)
def test_every_pair_allowed_iff_listed(current: JobStatus, new: JobStatus) -> None:
    listed = new in TRANSITIONS[current]
    assert can_transition(current, new) is listed
    if listed:
        assert transition(current, new) is new
    else:
        with pytest.raises(InvalidTransition) as info:
            transition(current, new)
        assert info.value.current is current
        assert info.value.requested is new
        assert current.value in str(info.value)
        assert new.value in str(info.value)


def test_happy_path_is_allowed() -> None:
    status = JobStatus.SUBMITTED
    for new in (JobStatus.DISPATCHED, JobStatus.RUNNING, JobStatus.FINISHED_COMPLETED):
        status = transition(status, new)
    assert status is JobStatus.FINISHED_COMPLETED


@pytest.mark.parametrize("status", list(JobStatus), ids=lambda s: s.value)
def test_final_states_have_no_exits(status: JobStatus) -> None:
    assert status.is_final is (status in FINAL)
    if status.is_final:
        for new in JobStatus:
            with pytest.raises(InvalidTransition):
                transition(status, new)


def _reachable(start: JobStatus) -> set[JobStatus]:
    seen: set[JobStatus] = set()
    todo = [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_aborted_job_never_runs_again() -> None:
    assert _reachable(JobStatus.FINISHED_ABORTED).isdisjoint(
        {JobStatus.RUNNING, JobStatus.DISPATCHED}
    )
    lifecycle = JobLifecycle()
    lifecycle.move(JobStatus.DISPATCHED, "dispatched")
    lifecycle.move(JobStatus.FINISHED_ABORTED, "user abort")
    for new in (JobStatus.RUNNING, JobStatus.DISPATCHED):
        with pytest.raises(InvalidTransition):
            lifecycle.move(new, "restart")
    assert lifecycle.status is JobStatus.FINISHED_ABORTED


def test_every_status_reachable_from_submitted() -> None:
    assert _reachable(JobStatus.SUBMITTED) | {JobStatus.SUBMITTED} == set(JobStatus)


def test_lifecycle_records_time_and_reason() -> None:
    before = time.time()
    lifecycle = JobLifecycle()
    lifecycle.move(JobStatus.DISPATCHED, "sent to sites")
    lifecycle.move(JobStatus.RUNNING, "started")
    lifecycle.move(JobStatus.FINISHED_EXECUTION_EXCEPTION, "site-2 failed")
    after = time.time()

    assert lifecycle.status is JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert [c.status for c in lifecycle.history] == [
        JobStatus.SUBMITTED,
        JobStatus.DISPATCHED,
        JobStatus.RUNNING,
        JobStatus.FINISHED_EXECUTION_EXCEPTION,
    ]
    assert [c.reason for c in lifecycle.history][1:] == [
        "sent to sites",
        "started",
        "site-2 failed",
    ]
    times = [c.at for c in lifecycle.history]
    assert times == sorted(times)
    assert before <= times[0] and times[-1] <= after
    dicts = lifecycle.as_dicts()
    assert dicts[-1] == {
        "status": "FINISHED:EXECUTION_EXCEPTION",
        "at": times[-1],
        "reason": "site-2 failed",
    }


def test_refused_move_changes_nothing() -> None:
    lifecycle = JobLifecycle()
    history = list(lifecycle.history)
    with pytest.raises(InvalidTransition):
        lifecycle.move(JobStatus.RUNNING, "skipping dispatch")
    assert lifecycle.status is JobStatus.SUBMITTED
    assert lifecycle.history == history
