"""The JobStore contract, run against every implementation (STYLE.md rule 7).

Every test runs on the in-memory store, SQLite and PostgreSQL (a throwaway server, see
conftest.py). The last part is the fencing contract of high availability (service session ids).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from store_helpers import check_cut_off_by_claim, run_together

from fedra.core import (
    TRANSITIONS,
    InvalidTransition,
    JobStatus,
    JobValidationError,
    parse_meta,
)
from fedra.jobstore import (
    JobExists,
    JobNotFound,
    JobStillActive,
    JobStore,
    JobStoreError,
    MemoryJobStore,
    PostgresJobStore,
    SqliteJobStore,
    StaleSession,
    StatusConflict,
)

S = JobStatus
META: dict[str, Any] = {"name": "hello", "deploy_map": {"app": ["@ALL"]}, "min_clients": 2}
ZIP = b"PK\x05\x06" + bytes(18)

#: A legal path from SUBMITTED to every status.
PATHS: dict[JobStatus, list[JobStatus]] = {
    S.SUBMITTED: [],
    S.DISPATCHED: [S.DISPATCHED],
    S.RUNNING: [S.DISPATCHED, S.RUNNING],
    S.FINISHED_COMPLETED: [S.DISPATCHED, S.RUNNING, S.FINISHED_COMPLETED],
    S.FINISHED_ABORTED: [S.FINISHED_ABORTED],
    S.FINISHED_EXECUTION_EXCEPTION: [S.DISPATCHED, S.RUNNING, S.FINISHED_EXECUTION_EXCEPTION],
    S.FAILED_TO_RUN: [S.FAILED_TO_RUN],
}
ILLEGAL = [(a, b) for a, b in itertools.product(S, S) if b not in TRANSITIONS[a]]
ACTIVE = [s for s in S if not s.is_final]
FINAL = [s for s in S if s.is_final]


class Clock:
    """A thread-safe clock that moves ``step`` seconds per reading."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.step = 1.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now


BACKENDS = ("memory", "postgres", "sqlite")


def open_backend(
    backend: str, root: Path, clock: Clock, request: pytest.FixtureRequest
) -> JobStore:
    """A new store of ``backend`` (PostgreSQL: in a fresh schema of the test server)."""
    if backend == "postgres":
        dsn, schema = request.getfixturevalue("pg_schema")
        return PostgresJobStore(dsn, root, schema=schema, clock=clock)
    if backend == "sqlite":
        return SqliteJobStore(root, clock=clock)
    return MemoryJobStore(root, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[JobStore]:
    instance = open_backend(request.param, tmp_path / "store", clock, request)
    try:
        yield instance
    finally:
        instance.close()


def _create(store: JobStore, **kwargs: Any) -> str:
    return store.create(META, ZIP, "alice@org", **kwargs).job_id


def _move_to(store: JobStore, job_id: str, status: JobStatus) -> None:
    for step in PATHS[status]:
        store.transition(job_id, step, f"to {step.value}")


# --------------------------------------------------------------------------- create / get / list


def test_implements_the_protocol(store: JobStore) -> None:
    assert isinstance(store, JobStore)


def test_create_then_get(store: JobStore, clock: Clock) -> None:
    record = store.create(META, ZIP, "alice@org")
    assert uuid.UUID(record.job_id).version == 4
    assert record.name == "hello"
    assert record.submitter == "alice@org"
    assert record.submitted_at == clock.now
    assert record.status is S.SUBMITTED
    assert [(c.status, c.at) for c in record.history] == [(S.SUBMITTED, clock.now)]
    assert "alice@org" in record.history[0].reason
    assert record.meta == parse_meta(META)
    assert record.failure is None
    assert record.run_info == {}
    assert store.get(record.job_id) == record
    assert store.job_zip(record.job_id) == ZIP


def test_create_with_an_id(store: JobStore) -> None:
    assert _create(store, job_id="job-1") == "job-1"
    with pytest.raises(JobExists, match="job-1"):
        store.create({**META, "name": "other"}, b"other", "bob", job_id="job-1")
    assert store.get("job-1").name == "hello"
    assert store.job_zip("job-1") == ZIP


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", ".hidden", "x" * 129])
def test_unsafe_ids_are_refused(store: JobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid job id"):
        _create(store, job_id=bad)
    assert store.list() == []


def test_invalid_meta_stores_nothing(store: JobStore, tmp_path: Path) -> None:
    with pytest.raises(JobValidationError, match="deploy_map"):
        store.create({"name": "x"}, ZIP, "alice")
    with pytest.raises(ValueError, match=r"meta\.json"):
        store.create({**META, "resource_spec": {"site-1": {"gpu": float("nan")}}}, ZIP, "alice")
    assert store.list() == []
    assert list((tmp_path / "store" / "jobs").iterdir()) == []


def test_list_by_submission_time_with_filters(store: JobStore, clock: Clock) -> None:
    clock.now = 5000.0
    late = _create(store, job_id="b-late")
    clock.now = 1000.0
    early = _create(store, job_id="a-early")
    middle = _create(store, job_id="b-middle")
    store.transition(middle, S.DISPATCHED, "scheduled")
    assert [r.job_id for r in store.list()] == [early, middle, late]
    assert [r.job_id for r in store.list(prefix="b-")] == [middle, late]
    assert [r.job_id for r in store.list(prefix="B-")] == []
    assert [r.job_id for r in store.list(statuses={S.SUBMITTED})] == [early, late]
    assert [r.job_id for r in store.list("b", {S.DISPATCHED, S.RUNNING})] == [middle]
    assert store.list(statuses=set()) == []
    assert store.list(prefix="zzz") == []
    assert store.list()[1] == store.get(middle)


def test_equal_times_keep_submission_order(store: JobStore, clock: Clock) -> None:
    clock.step = 0.0
    ids = [_create(store, job_id=f"j{i}") for i in (3, 1, 4, 0, 2)]
    assert len({r.submitted_at for r in store.list()}) == 1
    assert [r.job_id for r in store.list()] == ids


# --------------------------------------------------------------------------- transitions


def test_every_transition_is_recorded_in_order(store: JobStore) -> None:
    job = _create(store)
    steps = [
        (S.DISPATCHED, "sent to site-1, site-2"),
        (S.RUNNING, "all sites started"),
        (S.FINISHED_COMPLETED, "5 rounds done"),
    ]
    for status, reason in steps:
        record = store.transition(job, status, reason)
        assert record.status is status
        assert record == store.get(job)
    history = store.get(job).history
    assert [(c.status, c.reason) for c in history[1:]] == steps
    assert [c.status for c in history] == [S.SUBMITTED] + [s for s, _ in steps]
    times = [c.at for c in history]
    assert times == sorted(times) and len(set(times)) == len(times)


@pytest.mark.parametrize(("current", "new"), ILLEGAL, ids=lambda s: s.value)
def test_illegal_transitions_change_nothing(
    store: JobStore, current: JobStatus, new: JobStatus
) -> None:
    job = _create(store)
    _move_to(store, job, current)
    before = store.get(job)
    with pytest.raises(InvalidTransition) as caught:
        store.transition(job, new, "should not happen")
    assert caught.value.current == current
    assert caught.value.requested == new
    assert store.get(job) == before


def test_abort_is_never_overwritten_by_a_start(store: JobStore) -> None:
    job = _create(store)
    store.transition(job, S.FINISHED_ABORTED, "aborted by admin")
    for status in (S.DISPATCHED, S.RUNNING, S.FINISHED_COMPLETED):
        with pytest.raises(InvalidTransition):
            store.transition(job, status, "late start")
    assert store.get(job).status is S.FINISHED_ABORTED


def test_compare_and_set_refuses_a_stale_expectation(store: JobStore) -> None:
    job = _create(store)
    store.transition(job, S.DISPATCHED, "scheduled", expected=S.SUBMITTED)
    before = store.get(job)
    with pytest.raises(StatusConflict, match="is DISPATCHED, not SUBMITTED") as caught:
        store.transition(job, S.FINISHED_ABORTED, "abort", expected=S.SUBMITTED)
    assert isinstance(caught.value, InvalidTransition)
    assert store.get(job) == before


@pytest.mark.parametrize("round_", range(10))
def test_racing_abort_and_dispatch_exactly_one_wins(store: JobStore, round_: int) -> None:
    job = _create(store)
    results = run_together(
        lambda: store.transition(job, S.FINISHED_ABORTED, "abort", expected=S.SUBMITTED),
        lambda: store.transition(job, S.DISPATCHED, "dispatch", expected=S.SUBMITTED),
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1
    assert len(losers) == 1 and isinstance(losers[0], InvalidTransition)
    record = store.get(job)
    assert record == winners[0]
    assert [c.status for c in record.history] == [S.SUBMITTED, record.status]


def test_many_threads_racing_to_the_same_status_one_wins(store: JobStore) -> None:
    job = _create(store)
    results = run_together(*[lambda: store.transition(job, S.DISPATCHED, "go")] * 8)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, InvalidTransition) for r in results if isinstance(r, Exception))
    assert [c.status for c in store.get(job).history] == [S.SUBMITTED, S.DISPATCHED]


def test_racing_without_expectation_keeps_a_legal_history(store: JobStore) -> None:
    for _ in range(10):
        job = _create(store)
        run_together(
            lambda job=job: store.transition(job, S.FINISHED_ABORTED, "abort"),
            lambda job=job: store.transition(job, S.DISPATCHED, "dispatch"),
        )
        record = store.get(job)
        assert record.status is S.FINISHED_ABORTED  # an abort is never overwritten
        path = [c.status for c in record.history]
        assert all(b in TRANSITIONS[a] for a, b in itertools.pairwise(path))


def test_concurrent_creates_are_all_kept(store: JobStore) -> None:
    results = run_together(*[lambda: [_create(store) for _ in range(10)]] * 6)
    ids = [job for batch in results for job in cast(list[str], batch)]
    assert len(set(ids)) == 60
    assert sorted(r.job_id for r in store.list()) == sorted(ids)


# --------------------------------------------------------------------------- failure / run info


def test_failure_is_recorded_and_replaced(store: JobStore) -> None:
    job = _create(store)
    failure = {"site": "site-2", "task": "train", "traceback": "Traceback...", "reason": "OOM"}
    assert store.set_failure(job, failure).failure == failure
    failure["site"] = "mutated by caller"
    assert store.get(job).failure == {**failure, "site": "site-2"}
    store.set_failure(job, {"reason": "second"})
    assert store.get(job).failure == {"reason": "second"}


def test_run_info_is_merged(store: JobStore) -> None:
    job = _create(store)
    store.update_run_info(job, {"sites": ["site-1", "site-2"], "timings": {"start": 1.0}})
    record = store.update_run_info(job, {"timings": {"end": 9.0}, "rounds": 5})
    expected = {"sites": ["site-1", "site-2"], "timings": {"start": 1.0, "end": 9.0}, "rounds": 5}
    assert record.run_info == expected
    record.run_info["sites"].append("mutated")
    assert store.get(job).run_info == expected


def test_non_json_values_are_refused(store: JobStore) -> None:
    job = _create(store)
    with pytest.raises(ValueError, match="failure"):
        store.set_failure(job, {"when": object()})
    with pytest.raises(ValueError, match="run info"):
        store.update_run_info(job, {"x": float("inf")})
    assert store.get(job).failure is None
    assert store.get(job).run_info == {}


# --------------------------------------------------------------------------- files / delete


def test_workspace_is_a_folder_per_job(store: JobStore, tmp_path: Path) -> None:
    first, second = _create(store), _create(store)
    workspace = store.workspace(first)
    assert workspace.is_dir()
    assert workspace.is_relative_to(tmp_path / "store")
    assert store.workspace(first) == workspace
    assert store.workspace(second) != workspace
    (workspace / "models").mkdir()
    assert (store.workspace(first) / "models").is_dir()


@pytest.mark.parametrize("status", ACTIVE, ids=lambda s: s.value)
def test_active_jobs_cannot_be_deleted(store: JobStore, status: JobStatus) -> None:
    job = _create(store)
    _move_to(store, job, status)
    with pytest.raises(JobStillActive, match=status.value):
        store.delete(job)
    assert store.get(job).status is status
    assert store.job_zip(job) == ZIP


@pytest.mark.parametrize("status", FINAL, ids=lambda s: s.value)
def test_finished_jobs_are_deleted_with_their_files(store: JobStore, status: JobStatus) -> None:
    job, kept = _create(store), _create(store)
    _move_to(store, job, status)
    folder = store.workspace(job).parent
    (store.workspace(job) / "model.npz").write_bytes(b"x")
    store.delete(job)
    assert not folder.exists()
    assert [r.job_id for r in store.list()] == [kept]
    with pytest.raises(JobNotFound):
        store.get(job)
    with pytest.raises(JobNotFound):
        store.delete(job)
    assert store.job_zip(kept) == ZIP


CALLS: dict[str, Callable[[JobStore, str], object]] = {
    "get": lambda s, j: s.get(j),
    "transition": lambda s, j: s.transition(j, S.DISPATCHED, "x"),
    "set_failure": lambda s, j: s.set_failure(j, {"reason": "x"}),
    "update_run_info": lambda s, j: s.update_run_info(j, {"x": 1}),
    "job_zip": lambda s, j: s.job_zip(j),
    "workspace": lambda s, j: s.workspace(j),
    "delete": lambda s, j: s.delete(j),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_unknown_ids_raise_job_not_found(store: JobStore, call: str, tmp_path: Path) -> None:
    _create(store)
    for job_id in ("no-such-job", "../jobs"):
        with pytest.raises(JobNotFound, match="no job with id") as caught:
            CALLS[call](store, job_id)
        assert caught.value.job_id == job_id
        assert repr(job_id) in str(caught.value)
    assert not (tmp_path / "store" / "jobs" / "no-such-job").exists()


def test_closed_store_refuses_calls(store: JobStore) -> None:
    job = _create(store)
    store.close()
    store.close()
    with pytest.raises(JobStoreError, match="closed"):
        store.get(job)
    with pytest.raises(JobStoreError, match="closed"):
        store.list()
    with pytest.raises(JobStoreError, match="closed"):
        _create(store)


# --------------------------------------------------------------------------- fencing (HA)

#: Every write, called with an ssid on two jobs: ``done`` is FINISHED:ABORTED (so it can be
#: deleted), ``new`` is SUBMITTED (so it can be dispatched).
WRITES: dict[str, Callable[[JobStore, tuple[str, str], int | None], object]] = {
    "create": lambda s, jobs, ssid: s.create(META, ZIP, "bob", ssid=ssid),
    "transition": lambda s, jobs, ssid: s.transition(jobs[1], S.DISPATCHED, "x", ssid=ssid),
    "set_failure": lambda s, jobs, ssid: s.set_failure(jobs[0], {"reason": "late"}, ssid=ssid),
    "update_run_info": lambda s, jobs, ssid: s.update_run_info(jobs[0], {"late": 1}, ssid=ssid),
    "delete": lambda s, jobs, ssid: s.delete(jobs[0], ssid=ssid),
}


def _two_jobs(store: JobStore) -> tuple[str, str]:
    done, new = _create(store), _create(store)
    store.transition(done, S.FINISHED_ABORTED, "aborted")
    (store.workspace(done) / "model.npz").write_bytes(b"x")
    return done, new


def _snapshot(store: JobStore) -> list[tuple[Any, ...]]:
    """What a refused write must leave unchanged: every record, its zip and its folder."""
    return [
        (r, store.job_zip(r.job_id), sorted(p.name for p in store.workspace(r.job_id).iterdir()))
        for r in store.list()
    ]


def test_a_new_store_has_no_session(store: JobStore) -> None:
    assert store.current_ssid() == 0
    job = _create(store)  # writes without an ssid are not fenced
    store.transition(job, S.DISPATCHED, "x")
    assert store.current_ssid() == 0


def test_claims_only_go_forward(store: JobStore) -> None:
    store.claim_ssid(3)
    assert store.current_ssid() == 3
    store.claim_ssid(3)  # the same session again (a restart) is fine
    for older in (1, 2):
        with pytest.raises(StaleSession, match="session 3") as caught:
            store.claim_ssid(older)
        assert (caught.value.ssid, caught.value.current) == (older, 3)
        assert caught.value.hint
        assert isinstance(caught.value, JobStoreError)
    assert store.current_ssid() == 3
    store.claim_ssid(10)
    assert store.current_ssid() == 10


@pytest.mark.parametrize("write", sorted(WRITES))
def test_writes_of_a_stale_session_change_nothing(store: JobStore, write: str) -> None:
    old = store.fenced(1)
    jobs = _two_jobs(old)
    assert store.current_ssid() == 1
    store.claim_ssid(2)  # the overseer promotes another server
    before = _snapshot(store)
    with pytest.raises(StaleSession) as caught:
        WRITES[write](old, jobs, None)
    assert (caught.value.ssid, caught.value.current) == (1, 2)
    with pytest.raises(StaleSession):
        WRITES[write](store, jobs, 1)  # the same through the store's own ssid argument
    assert _snapshot(store) == before
    assert store.current_ssid() == 2
    assert old.list() == store.list()  # reads are never fenced
    assert old.job_zip(jobs[0]) == ZIP
    WRITES[write](store.fenced(2), jobs, None)  # the current session writes on
    assert _snapshot(store) != before


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_of_a_newer_session_takes_the_store_over(store: JobStore, write: str) -> None:
    jobs = _two_jobs(store)
    store.claim_ssid(4)
    WRITES[write](store, jobs, 7)
    assert store.current_ssid() == 7
    with pytest.raises(StaleSession):
        store.fenced(4).set_failure(_create(store), {"reason": "x"})


def test_a_refused_write_of_a_newer_session_claims_nothing(store: JobStore) -> None:
    job = _create(store)
    store.claim_ssid(1)
    newer = store.fenced(2)
    with pytest.raises(InvalidTransition):
        newer.transition(job, S.FINISHED_COMPLETED, "not allowed from SUBMITTED")
    with pytest.raises(JobNotFound):
        newer.set_failure("no-such-job", {"reason": "x"})
    with pytest.raises(JobExists):
        newer.create(META, ZIP, "bob", job_id=job)
    with pytest.raises(JobStillActive):
        newer.delete(job)
    assert store.current_ssid() == 1
    store.fenced(1).transition(job, S.DISPATCHED, "the current session still writes")


def test_new_ssid_takes_the_next_one(store: JobStore) -> None:
    assert store.new_ssid() == 1
    first = store.fenced(1)
    job = first.create(META, ZIP, "alice").job_id
    store.claim_ssid(5)
    assert store.new_ssid() == 6
    assert store.current_ssid() == 6
    with pytest.raises(StaleSession):
        store.fenced(5).transition(job, S.DISPATCHED, "x")


@pytest.mark.parametrize("bad", [0, -1, True, 2**63, "3", 1.0, None])
def test_invalid_session_ids_are_refused(store: JobStore, bad: Any) -> None:
    job = _create(store)
    before = store.get(job)
    with pytest.raises(ValueError, match="invalid service session id"):
        store.claim_ssid(bad)
    with pytest.raises(ValueError, match="invalid service session id"):
        store.fenced(bad)
    if bad is not None:  # None means "not fenced" to a write
        with pytest.raises(ValueError, match="invalid service session id"):
            store.transition(job, S.DISPATCHED, "x", ssid=bad)
    assert store.get(job) == before
    assert store.current_ssid() == 0


def test_the_fenced_view(store: JobStore) -> None:
    view = store.fenced(3)
    assert isinstance(view, JobStore)
    assert view.ssid == 3
    view.check()
    job = view.create(META, ZIP, "alice").job_id
    assert store.current_ssid() == 3
    with pytest.raises(ValueError, match="writes as session 3, not 4"):
        view.set_failure(job, {"reason": "x"}, ssid=4)
    assert view.set_failure(job, {"reason": "x"}, ssid=3).failure == {"reason": "x"}
    newer = view.fenced(4)
    newer.update_run_info(job, {"k": 1})
    assert view.current_ssid() == 4
    with pytest.raises(StaleSession):
        view.check()
    view.close()
    with pytest.raises(JobStoreError, match="closed"):
        store.get(job)


def test_a_promotion_during_writes_cuts_them_off_at_one_point(store: JobStore) -> None:
    """Writes of the old session succeed until the claim, and every one after it is refused."""
    job = _create(store)
    old = store.fenced(1)
    old.claim_ssid(1)
    first_refused = check_cut_off_by_claim(
        lambda i: old.update_run_info(job, {f"n{i:05d}": i}), lambda: store.claim_ssid(2), 10
    )
    assert store.get(job).run_info == {f"n{i:05d}": i for i in range(first_refused)}


def test_racing_claims_leave_the_largest(store: JobStore) -> None:
    ssids = [5, 3, 8, 1, 7, 2, 6, 4]
    results = run_together(*[lambda ssid=ssid: store.claim_ssid(ssid) for ssid in ssids])
    assert store.current_ssid() == 8
    assert results[ssids.index(8)] is None
    assert all(r is None or isinstance(r, StaleSession) for r in results)


def test_racing_new_ssids_are_all_different(store: JobStore) -> None:
    results = run_together(*[store.new_ssid] * 8)
    assert sorted(cast(list[int], results)) == list(range(1, 9))
    assert store.current_ssid() == 8
