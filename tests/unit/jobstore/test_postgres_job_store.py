"""PostgresJobStore only: a real server, several connections as several servers, bad databases.

Two stores on one database stand for two Fedra servers (each store has its own connection):
the database's own locking must decide every race between them.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from store_helpers import (
    META,
    S,
    check_cut_off_by_claim,
    check_one_wins_each_race,
    check_reopened,
    populate,
    run_together,
)

from fedra.jobstore import (
    PG_SCHEMA_VERSION,
    FencedJobStore,
    JobExists,
    JobRecord,
    JobStoreError,
    PostgresJobStore,
    StaleSession,
    StoreCorrupt,
)
from tests.postgres_server import PostgresServer


def _sql(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cur = conn.execute(statement)
            if cur.description is not None:
                rows = cur.fetchall()
        return rows


@pytest.fixture
def two_servers(
    pg_schema: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[PostgresJobStore, PostgresJobStore]]:
    """Two stores on one fresh schema: two servers, each with its own connection."""
    dsn, schema = pg_schema
    with (
        PostgresJobStore(dsn, tmp_path, schema=schema) as first,
        PostgresJobStore(dsn, tmp_path, schema=schema) as second,
    ):
        yield first, second


class Takeover(NamedTuple):
    """Two servers on one store; the old one wrote ``job`` as session 1 through ``old``."""

    old_server: PostgresJobStore
    new_server: PostgresJobStore
    old: FencedJobStore
    job: str


@pytest.fixture
def takeover(two_servers: tuple[PostgresJobStore, PostgresJobStore]) -> Takeover:
    """The old hot server (session 1) has created a job; the new one has claimed nothing yet."""
    old_server, new_server = two_servers
    old = old_server.fenced(1)
    return Takeover(old_server, new_server, old, old.create(META, b"zip", "alice").job_id)


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
    before = populate(store)
    store.close()
    with PostgresJobStore(pg_dsn, tmp_path) as reopened:
        check_reopened(reopened, before)


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
    two_servers: tuple[PostgresJobStore, PostgresJobStore], round_: int
) -> None:
    check_one_wins_each_race(*two_servers)


def test_two_servers_creating_one_id_one_wins(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    dsn, schema = pg_schema
    stores = [PostgresJobStore(dsn, tmp_path, schema=schema) for _ in range(4)]
    try:
        results = run_together(
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
    results = run_together(*[lambda: PostgresJobStore(pg_dsn, tmp_path)] * 4)
    stores = [r for r in results if isinstance(r, PostgresJobStore)]
    try:
        assert len(stores) == 4, results
        job = stores[0].create(META, b"zip", "alice").job_id
        assert all(s.get(job) == stores[0].get(job) for s in stores)
    finally:
        for store in stores:
            store.close()


def test_fencing_holds_across_servers(takeover: Takeover) -> None:
    old_server, new_server, old, job = takeover
    new_server.claim_ssid(2)
    before = new_server.get(job)
    with pytest.raises(StaleSession, match="now belongs to session 2"):
        old.transition(job, S.DISPATCHED, "the old hot server goes on")
    with pytest.raises(StaleSession):
        old_server.claim_ssid(1)
    assert new_server.get(job) == before
    new_server.fenced(2).transition(job, S.DISPATCHED, "the new hot server")
    assert old_server.get(job).status is S.DISPATCHED


def test_a_promotion_on_another_server_cuts_writes_off(takeover: Takeover) -> None:
    """The old hot server writes in a loop while another connection claims the store."""
    job = takeover.job
    first_refused = check_cut_off_by_claim(
        lambda i: takeover.old.update_run_info(job, {f"n{i:05d}": i}),
        lambda: takeover.new_server.claim_ssid(2),
        5,
    )
    assert takeover.new_server.get(job).run_info == {f"n{i:05d}": i for i in range(first_refused)}


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
    pg_schema: tuple[str, str], takeover: Takeover
) -> None:
    """A write checked against session 1 and still in flight holds the claim of session 2 back.

    Otherwise the write would land after the claim: the old hot server writing after the new
    one took over.
    """
    dsn, schema = pg_schema
    old_server, new_server, old, job = takeover
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
