"""SqliteJobStore only: files on disk, restarts, corrupt databases, two connections, fencing
across processes, the upgrade from schema 1."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import META, S, check_one_wins_each_race, check_reopened, populate

from fedra.jobstore import DB_FILE, SCHEMA_VERSION, SqliteJobStore, StaleSession, StoreCorrupt


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
    before = populate(store)
    store.close()
    with SqliteJobStore(tmp_path) as reopened:
        check_reopened(reopened, before)


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
    with SqliteJobStore(tmp_path) as first, SqliteJobStore(tmp_path) as second:
        check_one_wins_each_race(first, second)


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
from fedra.jobstore import SqliteJobStore
with SqliteJobStore(Path(sys.argv[1])) as store:
    store.claim_ssid(int(sys.argv[2]))
    print(store.current_ssid())
"""


def _claim_in_another_process(root: Path, ssid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, str(root), str(ssid)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fencing_holds_across_processes(tmp_path: Path) -> None:
    """Another process (the new hot server) claims the store: this one's writes stop."""
    with SqliteJobStore(tmp_path) as store:
        old = store.fenced(1)
        job = old.create(META, b"zip", "alice").job_id
        claimed = _claim_in_another_process(tmp_path, 2)
        assert (claimed.returncode, claimed.stdout.strip()) == (0, "2"), claimed.stderr
        before = store.get(job)
        with pytest.raises(StaleSession, match="now belongs to session 2"):
            old.transition(job, S.DISPATCHED, "the old hot server goes on")
        assert store.get(job) == before
        assert store.current_ssid() == 2
        store.fenced(2).transition(job, S.DISPATCHED, "the new hot server")
        stale = _claim_in_another_process(tmp_path, 1)
        assert stale.returncode != 0
        assert "StaleSession" in stale.stderr
