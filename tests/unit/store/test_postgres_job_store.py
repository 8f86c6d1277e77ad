"""PostgresJobStore only: a real server, several connections as several servers, bad databases.

Two stores on one database stand for two Fedra servers (each store has its own connection):
the database's own locking must decide every race between them.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fedra.core import InvalidTransition, JobStatus
from fedra.store import (
    PG_SCHEMA_VERSION,
    JobExists,
    JobRecord,
    JobStoreError,
    PostgresJobStore,
    StaleSession,
    StoreCorrupt,
)
from tests.postgres_server import PostgresServer

S = JobStatus
META: dict[str, Any] = {"name": "hello", "deploy_map": {"app": ["@ALL"]}}


def _sql(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cur = conn.execute(statement)
            if cur.description is not None:
                rows = cur.fetchall()
        return rows


def _populate(store: PostgresJobStore) -> list[JobRecord]:
    done = store.create(META, b"zip-1", "alice")
    for status in (S.DISPATCHED, S.RUNNING, S.FINISHED_EXECUTION_EXCEPTION):
        store.transition(done.job_id, status, f"reason for {status.value}")
    store.set_failure(done.job_id, {"site": "site-1", "task": "train", "traceback": "tb"})
    store.update_run_info(done.job_id, {"sites": ["site-1"], "timings": {"start": 1.5}})
    (store.workspace(done.job_id) / "model.npz").write_bytes(b"weights")
    store.create({**META, "name": "second"}, b"zip-2", "bob", job_id="second")
    return store.list()


def _run_together(*calls: Any) -> list[object]:
    """Run the calls at once from threads; each result or the exception it raised."""
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


def test_layout_in_the_database_and_on_disk(pg_dsn: str, tmp_path: Path) -> None:
    with PostgresJobStore(pg_dsn, tmp_path) as store:
        record = store.create(META, b"zip", "alice")
        assert (tmp_path / "jobs" / record.job_id / "job.zip").read_bytes() == b"zip"
        assert store.workspace(record.job_id) == tmp_path / "jobs" / record.job_id / "workspace"
    tables = _sql(
        pg_dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'fedra'"
    )
    assert {t for (t,) in tables} == {"fedra_store", "jobs", "transitions"}
    assert _sql(pg_dsn, "SELECT version, ssid FROM fedra.fedra_store") == [(PG_SCHEMA_VERSION, 0)]
    assert _sql(pg_dsn, "SELECT job_id, status FROM fedra.jobs") == [(record.job_id, "SUBMITTED")]


def test_reopen_keeps_everything(pg_dsn: str, tmp_path: Path) -> None:
    store = PostgresJobStore(pg_dsn, tmp_path)
    before = _populate(store)
    store.close()
    with PostgresJobStore(pg_dsn, tmp_path) as reopened:
        assert reopened.list() == before
        first = before[0]
        assert [c.reason for c in first.history][1:] == [
            "reason for DISPATCHED",
            "reason for RUNNING",
            "reason for FINISHED:EXECUTION_EXCEPTION",
        ]
        assert first.failure == {"site": "site-1", "task": "train", "traceback": "tb"}
        assert first.run_info == {"sites": ["site-1"], "timings": {"start": 1.5}}
        assert reopened.job_zip(first.job_id) == b"zip-1"
        assert (reopened.workspace(first.job_id) / "model.npz").read_bytes() == b"weights"
        reopened.transition("second", S.DISPATCHED, "after restart")
        assert [c.status for c in reopened.get("second").history] == [S.SUBMITTED, S.DISPATCHED]


def test_schemas_are_separate_stores(pg_dsn: str, tmp_path: Path) -> None:
    with (
        PostgresJobStore(pg_dsn, tmp_path / "a", schema="fed_a") as a,
        PostgresJobStore(pg_dsn, tmp_path / "b", schema="fed_b") as b,
    ):
        a.create(META, b"zip", "alice", job_id="only-in-a")
        b.claim_ssid(4)
        assert [r.job_id for r in a.list()] == ["only-in-a"]
        assert b.list() == []
        assert (a.current_ssid(), b.current_ssid()) == (0, 4)


@pytest.mark.parametrize("bad", ["", "Fedra", "1abc", "a-b", "x" * 64, 'a"; DROP TABLE x; --'])
def test_unsafe_schema_names_are_refused(pg_dsn: str, tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL schema name"):
        PostgresJobStore(pg_dsn, tmp_path, schema=bad)


@pytest.mark.parametrize("round_", range(3))
def test_two_servers_race_exactly_one_wins(
    pg_schema: tuple[str, str], tmp_path: Path, round_: int
) -> None:
    dsn, schema = pg_schema
    with (
        PostgresJobStore(dsn, tmp_path, schema=schema) as first,
        PostgresJobStore(dsn, tmp_path, schema=schema) as second,
    ):
        jobs = [first.create(META, b"zip", "alice").job_id for _ in range(10)]
        wins: dict[str, list[JobStatus]] = {job: [] for job in jobs}

        def run(store: PostgresJobStore, target: JobStatus) -> None:
            for job in jobs:
                try:
                    store.transition(job, target, "race", expected=S.SUBMITTED)
                    wins[job].append(target)
                except InvalidTransition:
                    pass

        results = _run_together(
            lambda: run(first, S.FINISHED_ABORTED), lambda: run(second, S.DISPATCHED)
        )
        assert results == [None, None]  # no error but the refused transitions
        for job in jobs:
            assert len(wins[job]) == 1, wins[job]
            record = second.get(job)
            assert record.status is wins[job][0]
            assert len(record.history) == 2


def test_two_servers_creating_one_id_one_wins(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    dsn, schema = pg_schema
    stores = [PostgresJobStore(dsn, tmp_path, schema=schema) for _ in range(4)]
    try:
        results = _run_together(
            *[
                lambda i=i, s=s: s.create(
                    {**META, "name": f"by-{i}"}, f"zip-{i}".encode(), "a", "x"
                )
                for i, s in enumerate(stores)
            ]
        )
        winners = [r for r in results if isinstance(r, JobRecord)]
        assert len(winners) == 1
        assert all(isinstance(r, JobExists) for r in results if r is not winners[0])
        index = winners[0].name.removeprefix("by-")
        assert stores[0].job_zip("x") == f"zip-{index}".encode()
        assert stores[3].get("x") == winners[0]
    finally:
        for store in stores:
            store.close()


def test_servers_opening_a_new_database_at_once(pg_dsn: str, tmp_path: Path) -> None:
    results = _run_together(*[lambda: PostgresJobStore(pg_dsn, tmp_path)] * 4)
    stores = [r for r in results if isinstance(r, PostgresJobStore)]
    try:
        assert len(stores) == 4, results
        job = stores[0].create(META, b"zip", "alice").job_id
        assert all(s.get(job) == stores[0].get(job) for s in stores)
    finally:
        for store in stores:
            store.close()


def test_fencing_holds_across_servers(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    dsn, schema = pg_schema
    with (
        PostgresJobStore(dsn, tmp_path, schema=schema) as old_server,
        PostgresJobStore(dsn, tmp_path, schema=schema) as new_server,
    ):
        old = old_server.fenced(1)
        job = old.create(META, b"zip", "alice").job_id
        new_server.claim_ssid(2)
        before = new_server.get(job)
        with pytest.raises(StaleSession, match="now belongs to session 2"):
            old.transition(job, S.DISPATCHED, "the old hot server goes on")
        with pytest.raises(StaleSession):
            old_server.claim_ssid(1)
        assert new_server.get(job) == before
        new_server.fenced(2).transition(job, S.DISPATCHED, "the new hot server")
        assert old_server.get(job).status is S.DISPATCHED


def test_a_promotion_on_another_server_cuts_writes_off(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    """The old hot server writes in a loop while another connection claims the store."""
    dsn, schema = pg_schema
    with (
        PostgresJobStore(dsn, tmp_path, schema=schema) as old_server,
        PostgresJobStore(dsn, tmp_path, schema=schema) as new_server,
    ):
        old = old_server.fenced(1)
        job = old.create(META, b"zip", "alice").job_id
        outcomes: list[bool] = []
        progress = threading.Condition()
        stop = threading.Event()

        def write_until_refused() -> None:
            i = 0
            while not stop.is_set():
                try:
                    old.update_run_info(job, {f"n{i:05d}": i})
                    ok = True
                except StaleSession:
                    ok = False
                with progress:
                    outcomes.append(ok)
                    progress.notify_all()
                if not ok and outcomes.count(False) == 5:
                    return
                i += 1

        writer = threading.Thread(target=write_until_refused)
        writer.start()
        try:
            with progress:
                assert progress.wait_for(lambda: len(outcomes) >= 5, timeout=30)
                before_claim = len(outcomes)
            new_server.claim_ssid(2)
            with progress:
                after_claim = len(outcomes)
            writer.join(timeout=60)
        finally:
            stop.set()
            writer.join()
        first_refused = outcomes.index(False)
        assert outcomes[first_refused:] == [False] * 5
        assert all(outcomes[:first_refused])
        assert before_claim <= first_refused <= after_claim + 1
        expected = {f"n{i:05d}": i for i in range(first_refused)}
        assert new_server.get(job).run_info == expected


def _lock_waiters(dsn: str) -> int:
    rows = _sql(
        dsn,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'fedra-job-store' AND wait_event_type = 'Lock'",
    )
    return int(rows[0][0])


def _wait_until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_claim_waits_for_a_write_that_passed_the_fence(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    """A write checked against session 1 and still in flight holds the claim of session 2 back.

    Otherwise the write would land after the claim: the old hot server writing after the new
    one took over.
    """
    dsn, schema = pg_schema
    with (
        PostgresJobStore(dsn, tmp_path, schema=schema) as old_server,
        PostgresJobStore(dsn, tmp_path, schema=schema) as new_server,
    ):
        old = old_server.fenced(1)
        job = old.create(META, b"zip", "alice").job_id
        results: dict[str, object] = {}

        def call(name: str, fn: Any) -> threading.Thread:
            def run() -> None:
                try:
                    results[name] = fn()
                except Exception as exc:
                    results[name] = exc

            thread = threading.Thread(target=run)
            thread.start()
            return thread

        with psycopg.connect(dsn) as other:  # holds the job's row: the write stops mid-way
            other.execute(f"SELECT * FROM {schema}.jobs WHERE job_id = %s FOR UPDATE", (job,))
            write = call("write", lambda: old.update_run_info(job, {"late": True}))
            _wait_until(lambda: _lock_waiters(dsn) == 1, "the write to wait for the row")
            claim = call("claim", lambda: new_server.claim_ssid(2))
            _wait_until(
                lambda: "claim" in results or _lock_waiters(dsn) == 2,
                "the claim to finish or wait",
            )
            assert "claim" not in results, "the claim went through under a write in flight"
            other.rollback()
        write.join()
        claim.join()
        assert results == {"write": old_server.get(job), "claim": None}
        assert new_server.get(job).run_info == {"late": True}
        assert new_server.current_ssid() == 2
        with pytest.raises(StaleSession):
            old.update_run_info(job, {"later": True})


def test_a_held_row_times_out_with_a_clear_error(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    dsn, schema = pg_schema
    with PostgresJobStore(dsn, tmp_path, schema=schema, timeout=0.3) as store:
        job = store.create(META, b"zip", "alice").job_id
        with psycopg.connect(dsn) as other:  # another server, stuck inside a transaction
            other.execute(f"SELECT * FROM {schema}.jobs WHERE job_id = %s FOR UPDATE", (job,))
            with pytest.raises(JobStoreError, match="lock") as caught:
                store.transition(job, S.DISPATCHED, "x")
            assert caught.value.hint and "another server" in caught.value.hint
            other.rollback()
        assert store.transition(job, S.DISPATCHED, "x").status is S.DISPATCHED


def test_a_dropped_connection_is_opened_again(
    pg_schema: tuple[str, str], pg_server: PostgresServer, tmp_path: Path
) -> None:
    dsn, schema = pg_schema
    with PostgresJobStore(dsn, tmp_path, schema=schema) as store:
        job = store.create(META, b"zip", "alice").job_id
        killed = _sql(
            pg_server.dsn(),
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE application_name = 'fedra-job-store' AND datname = 'fedra_tests'",
        )
        assert killed == [(True,)]
        assert store.get(job).status is S.SUBMITTED  # reconnected
        assert store.transition(job, S.DISPATCHED, "after reconnect").status is S.DISPATCHED


def test_errors_never_show_the_password(pg_server: PostgresServer, tmp_path: Path) -> None:
    wrong = pg_server.dsn().replace(pg_server.password, "not-the-password-1234")
    with pytest.raises(JobStoreError) as caught:
        PostgresJobStore(wrong, tmp_path)
    assert "not-the-password-1234" not in str(caught.value)
    assert f"127.0.0.1:{pg_server.port}" in str(caught.value)
    with PostgresJobStore(pg_server.dsn("fedra_tests"), tmp_path, schema="pw_check") as store:
        assert pg_server.password not in repr(store)
        assert pg_server.password not in store.where
    _sql(pg_server.dsn("fedra_tests"), "DROP SCHEMA pw_check CASCADE")


def test_an_unreachable_server_is_a_clear_error(pg_server: PostgresServer, tmp_path: Path) -> None:
    dsn = pg_server.dsn().replace(f"port={pg_server.port}", "port=1")
    with pytest.raises(JobStoreError, match=r"127\.0\.0\.1:1/postgres") as caught:
        PostgresJobStore(dsn, tmp_path, timeout=2)
    assert caught.value.hint and "reachable" in caught.value.hint


def test_a_bad_dsn_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL DSN") as caught:
        PostgresJobStore("host=x password=secret-1 =broken", tmp_path)
    assert "secret-1" not in str(caught.value)


def test_without_psycopg_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(JobStoreError, match="needs psycopg 3") as caught:
        PostgresJobStore("host=127.0.0.1", tmp_path)
    assert caught.value.hint == "pip install 'fedra[postgres]'"


def test_a_foreign_schema_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    _sql(pg_dsn, "CREATE SCHEMA fedra", "CREATE TABLE fedra.customers (id integer)")
    with pytest.raises(StoreCorrupt, match="not a Fedra job store") as caught:
        PostgresJobStore(pg_dsn, tmp_path)
    assert "customers" in str(caught.value)
    assert caught.value.hint


def test_a_newer_schema_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    PostgresJobStore(pg_dsn, tmp_path).close()
    _sql(pg_dsn, "UPDATE fedra.fedra_store SET version = 99")
    with pytest.raises(StoreCorrupt, match="newer Fedra"):
        PostgresJobStore(pg_dsn, tmp_path)


def test_damaged_contents_are_clear_errors(pg_dsn: str, tmp_path: Path) -> None:
    with PostgresJobStore(pg_dsn, tmp_path) as store:
        job = store.create(META, b"zip", "alice").job_id
        _sql(pg_dsn, f"UPDATE fedra.jobs SET status = 'BOGUS' WHERE job_id = '{job}'")
        with pytest.raises(StoreCorrupt, match="BOGUS"):
            store.get(job)
        with pytest.raises(StoreCorrupt, match="BOGUS"):
            store.transition(job, S.DISPATCHED, "x")
        _sql(pg_dsn, "DELETE FROM fedra.fedra_store")
        with pytest.raises(StoreCorrupt, match="session row is missing"):
            store.current_ssid()
        _sql(pg_dsn, "DROP TABLE fedra.transitions")
        with pytest.raises(StoreCorrupt, match="transitions"):
            store.list()
