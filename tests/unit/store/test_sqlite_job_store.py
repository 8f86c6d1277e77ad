"""SqliteJobStore only: files on disk, restarts, corrupt databases, two connections, fencing
across processes, the upgrade from schema 1."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from fedra.core import InvalidTransition, JobStatus
from fedra.store import (
    DB_FILE,
    SCHEMA_VERSION,
    JobRecord,
    SqliteJobStore,
    StaleSession,
    StoreCorrupt,
)

S = JobStatus
META: dict[str, Any] = {"name": "hello", "deploy_map": {"app": ["@ALL"]}}


def _populate(store: SqliteJobStore) -> list[JobRecord]:
    done = store.create(META, b"zip-1", "alice")
    for status in (S.DISPATCHED, S.RUNNING, S.FINISHED_EXECUTION_EXCEPTION):
        store.transition(done.job_id, status, f"reason for {status.value}")
    store.set_failure(done.job_id, {"site": "site-1", "task": "train", "traceback": "tb"})
    store.update_run_info(done.job_id, {"sites": ["site-1"], "timings": {"start": 1.5}})
    (store.workspace(done.job_id) / "model.npz").write_bytes(b"weights")
    store.create({**META, "name": "second"}, b"zip-2", "bob", job_id="second")
    return store.list()


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def test_layout_on_disk(tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path) as store:
        record = store.create(META, b"zip", "alice")
        assert (tmp_path / DB_FILE).is_file()
        assert (tmp_path / "jobs" / record.job_id / "job.zip").read_bytes() == b"zip"
        assert store.workspace(record.job_id) == tmp_path / "jobs" / record.job_id / "workspace"
    conn = sqlite3.connect(tmp_path / DB_FILE)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert {"jobs", "transitions"} <= tables


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path)
    before = _populate(store)
    store.close()
    with SqliteJobStore(tmp_path) as reopened:
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


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreCorrupt, match="unreadable") as caught:
        SqliteJobStore(tmp_path)
    assert str(tmp_path / DB_FILE) in str(caught.value)
    assert caught.value.hint


def test_damaged_pages_are_a_clear_error(tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path) as store:
        for i in range(200):
            store.create({**META, "name": f"job-{i}"}, b"zip", "alice" * 50)
    path = tmp_path / DB_FILE
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[4096 + 100 : len(data) - 100] = b"\xff" * (len(data) - 4096 - 200)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt) as caught:
        SqliteJobStore(tmp_path)
    assert str(path) in str(caught.value)


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    _sql(tmp_path / DB_FILE, "CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreCorrupt, match="not a Fedra job store"):
        SqliteJobStore(tmp_path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    SqliteJobStore(tmp_path).close()
    _sql(tmp_path / DB_FILE, "PRAGMA user_version = 99")
    with pytest.raises(StoreCorrupt, match="newer Fedra"):
        SqliteJobStore(tmp_path)


def test_an_unreadable_row_is_a_clear_error(tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path) as store:
        job = store.create(META, b"zip", "alice").job_id
        _sql(tmp_path / DB_FILE, f"UPDATE jobs SET status = 'BOGUS' WHERE job_id = '{job}'")
        with pytest.raises(StoreCorrupt, match="BOGUS"):
            store.get(job)
        with pytest.raises(StoreCorrupt, match="BOGUS"):
            store.transition(job, S.DISPATCHED, "x")


@pytest.mark.parametrize("round_", range(5))
def test_two_connections_race_exactly_one_wins(tmp_path: Path, round_: int) -> None:
    """Two stores on one file stand for two processes: SQLite's own locking decides."""
    first, second = SqliteJobStore(tmp_path), SqliteJobStore(tmp_path)
    try:
        jobs = [first.create(META, b"zip", "alice").job_id for _ in range(10)]
        barrier = threading.Barrier(2)
        wins: dict[str, list[JobStatus]] = {job: [] for job in jobs}

        def run(store: SqliteJobStore, target: JobStatus) -> None:
            barrier.wait()
            for job in jobs:
                try:
                    store.transition(job, target, "race", expected=S.SUBMITTED)
                    wins[job].append(target)
                except InvalidTransition:
                    pass

        threads = [
            threading.Thread(target=run, args=(first, S.FINISHED_ABORTED)),
            threading.Thread(target=run, args=(second, S.DISPATCHED)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for job in jobs:
            assert len(wins[job]) == 1, wins[job]
            record = second.get(job)
            assert record.status is wins[job][0]
            assert len(record.history) == 2
    finally:
        first.close()
        second.close()


#: The schema of version 1 (before fencing), as earlier Fedra releases wrote it.
SCHEMA_1 = (
    """CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL, submitter TEXT NOT NULL, submitted_at REAL NOT NULL,
        status TEXT NOT NULL, meta TEXT NOT NULL, failure TEXT, run_info TEXT NOT NULL)""",
    """CREATE TABLE transitions (job_id TEXT NOT NULL, seq INTEGER NOT NULL,
        status TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (job_id, seq))""",
    "CREATE INDEX jobs_by_time ON jobs (submitted_at, seq)",
    """INSERT INTO jobs (job_id, name, submitter, submitted_at, status, meta, failure, run_info)
        VALUES ('old-job', 'hello', 'alice', 12.5, 'SUBMITTED',
        '{"name": "hello", "deploy_map": {"app": ["@ALL"]}}', NULL, '{"k": 1}')""",
    "INSERT INTO transitions VALUES ('old-job', 0, 'SUBMITTED', 12.5, 'submitted by alice')",
    "PRAGMA user_version = 1",
)


def test_a_schema_1_store_is_upgraded(tmp_path: Path) -> None:
    _sql(tmp_path / DB_FILE, *SCHEMA_1)
    with SqliteJobStore(tmp_path) as store:
        record = store.get("old-job")
        assert (record.status, record.submitted_at, record.run_info) == (
            S.SUBMITTED,
            12.5,
            {"k": 1},
        )
        assert store.current_ssid() == 0
        store.claim_ssid(3)
        with pytest.raises(StaleSession):
            store.transition("old-job", S.DISPATCHED, "x", ssid=2)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT ssid FROM session").fetchall() == [(3,)]
    finally:
        conn.close()


def test_a_missing_session_row_is_a_clear_error(tmp_path: Path) -> None:
    SqliteJobStore(tmp_path).close()
    _sql(tmp_path / DB_FILE, "DELETE FROM session")
    with pytest.raises(StoreCorrupt, match="session row is missing"):
        SqliteJobStore(tmp_path)


CLAIM_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from fedra.store import SqliteJobStore
with SqliteJobStore(Path(sys.argv[1])) as store:
    store.claim_ssid(int(sys.argv[2]))
    print(store.current_ssid())
"""


def test_fencing_holds_across_processes(tmp_path: Path) -> None:
    """Another process (the new hot server) claims the store: this one's writes stop."""
    with SqliteJobStore(tmp_path) as store:
        old = store.fenced(1)
        job = old.create(META, b"zip", "alice").job_id
        claimed = subprocess.run(
            [sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, str(tmp_path), "2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert claimed.stdout.strip() == "2"
        before = store.get(job)
        with pytest.raises(StaleSession, match="now belongs to session 2"):
            old.transition(job, S.DISPATCHED, "the old hot server goes on")
        assert store.get(job) == before
        assert store.current_ssid() == 2
        store.fenced(2).transition(job, S.DISPATCHED, "the new hot server")
        stale = subprocess.run(
            [sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, str(tmp_path), "1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert stale.returncode != 0
        assert "StaleSession" in stale.stderr
