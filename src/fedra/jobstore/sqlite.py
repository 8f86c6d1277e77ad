"""The embedded job store: SQLite (``root/jobs.db``) for records, files under ``root/jobs/``.

Records and their status history live in two tables; the database runs in WAL mode, so readers
never block the writer. Every write is one ``BEGIN IMMEDIATE`` transaction, which makes a status
change a true compare-and-set between threads and between processes sharing the file. The
fencing session id (:mod:`fedra.jobstore.fencing`) is one row, checked and updated inside the same
transaction as the write it guards. A file that is not a readable job database is reported as
:class:`~fedra.jobstore.StoreCorrupt`, with its path, when the store opens.

SQLite's locks are only as good as the file system's: use a local disk, never a network file
system (NFS, SMB), whose locking SQLite cannot rely on.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from fedra.core import JobStatus
from fedra.jobstore._base import NewJob
from fedra.jobstore._sql import SqlJobStore, first_change, insert_params, ssid_of
from fedra.jobstore.errors import JobExists, JobStoreError, StoreCorrupt
from fedra.jobstore.fencing import check_ssid, fence
from fedra.jobstore.files import JobFiles
from fedra.jobstore.record import JobRecord

DB_FILE = "jobs.db"
SCHEMA_VERSION = 2

#: The fencing session row (schema 2).
_SESSION = (
    "CREATE TABLE session (id INTEGER PRIMARY KEY CHECK (id = 1), ssid INTEGER NOT NULL)",
    "INSERT INTO session (id, ssid) VALUES (1, 0)",
)
_SCHEMA = (
    """CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        submitter TEXT NOT NULL,
        submitted_at REAL NOT NULL,
        status TEXT NOT NULL,
        meta TEXT NOT NULL,
        failure TEXT,
        run_info TEXT NOT NULL
    )""",
    """CREATE TABLE transitions (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        at REAL NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    )""",
    "CREATE INDEX jobs_by_time ON jobs (submitted_at, seq)",
    *_SESSION,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
# ?1: an id prefix or NULL; ?2: a JSON list of statuses or NULL.
_SELECTED = """(?1 IS NULL OR substr(job_id, 1, length(?1)) = ?1)
    AND (?2 IS NULL OR status IN (SELECT value FROM json_each(?2)))"""
#: The statements, by the names :mod:`fedra.jobstore._sql` gives them, and SQLite's own ones.
#: Every write runs under ``BEGIN IMMEDIATE``, which holds the database's write lock from its
#: start: ``lock`` and ``run_info`` need no row locks of their own.
_QUERIES = {
    "job": "SELECT * FROM jobs WHERE job_id = ?",
    "changes": "SELECT * FROM transitions WHERE job_id = ? ORDER BY seq",
    "status": "SELECT status FROM jobs WHERE job_id = ?",
    "lock": "SELECT status FROM jobs WHERE job_id = ?",
    "next_seq": "SELECT COALESCE(MAX(seq), -1) + 1 AS seq FROM transitions WHERE job_id = ?",
    "set_status": "UPDATE jobs SET status = ? WHERE job_id = ? AND status = ?",
    "change": "INSERT INTO transitions (job_id, seq, status, at, reason) VALUES (?, ?, ?, ?, ?)",
    "set_failure": "UPDATE jobs SET failure = ? WHERE job_id = ?",
    "run_info": "SELECT run_info FROM jobs WHERE job_id = ?",
    "set_run_info": "UPDATE jobs SET run_info = ? WHERE job_id = ?",
    "delete_changes": "DELETE FROM transitions WHERE job_id = ?",
    "delete": "DELETE FROM jobs WHERE job_id = ?",
    "list": f"SELECT * FROM jobs WHERE {_SELECTED} ORDER BY submitted_at, seq",  # noqa: S608
    "list_changes": (
        "SELECT * FROM transitions"  # noqa: S608
        f" WHERE job_id IN (SELECT job_id FROM jobs WHERE {_SELECTED}) ORDER BY job_id, seq"
    ),
    "ssid": "SELECT ssid FROM session WHERE id = 1",
    "set_ssid": "UPDATE session SET ssid = ? WHERE id = 1",
    "exists": "SELECT 1 FROM jobs WHERE job_id = ?",
    "insert": """INSERT INTO jobs (job_id, name, submitter, submitted_at, status, meta, failure,
        run_info) VALUES (?, ?, ?, ?, ?, ?, NULL, '{}')""",
}


class SqliteJobStore(SqlJobStore):
    """A :class:`~fedra.jobstore.JobStore` in ``root/jobs.db`` with files under ``root/jobs/``.

    Survives restarts: reopening the same ``root`` gives the same records and histories. One
    connection, guarded by a lock, serves every thread; ``timeout`` is how long a write waits
    for another process holding the database.
    """

    def __init__(
        self, root: Path, *, clock: Callable[[], float] = time.time, timeout: float = 30.0
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.where = self.root / DB_FILE
        self._files = JobFiles(self.root)
        self._clock = clock
        self._q = _QUERIES
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = _open(self.path, timeout)

    def new_ssid(self) -> int:
        """Take the next session id, record it and return it (one transaction)."""
        with self._write() as conn:
            ssid = check_ssid(_current_ssid(conn, self.path) + 1)
            conn.execute(self._q["set_ssid"], (ssid,))
            return ssid

    def close(self) -> None:
        """Close the database (idempotent); later calls raise JobStoreError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _insert(self, job: NewJob, ssid: int | None) -> JobRecord:
        """Check the id is free, write the zip, insert the rows: all under the write lock.

        Should anything fail, COMMIT included, nothing is stored: the zip is removed too.
        """
        written = False
        try:
            with self._write(ssid) as conn:
                if conn.execute(self._q["exists"], (job.job_id,)).fetchone():
                    raise JobExists(job.job_id)
                self._files.write_zip(job.job_id, job.job_zip)
                written = True
                now = self._clock()
                conn.execute(self._q["insert"], insert_params(job, now))
                conn.execute(self._q["change"], first_change(job, now))
                return self._load(conn, job.job_id)
        except BaseException:
            if written:
                self._files.remove(job.job_id)
            raise

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A deferred transaction: in WAL mode it never waits for the writer."""
        return self._tx(immediate=False)

    def _write(self, ssid: int | None = None) -> AbstractContextManager[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: the database's write lock, held from the start until COMMIT."""
        return self._tx(immediate=True, ssid=ssid)

    def _list_params(self, prefix: str | None, statuses: set[JobStatus] | None) -> Any:
        wanted = None if statuses is None else json.dumps(sorted(s.value for s in statuses))
        return (prefix, wanted)

    @contextmanager
    def _tx(self, immediate: bool, ssid: int | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction, under the lock; SQLite errors become store errors.

        With ``ssid`` (a write), the session is fenced first, inside the transaction.
        """
        with self._lock:
            conn = self._conn
            if conn is None:
                raise JobStoreError(f"the job store {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    if ssid is not None:
                        current = _current_ssid(conn, self.path)
                        if fence(current, ssid) != current:
                            conn.execute(self._q["set_ssid"], (ssid,))
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc


def _current_ssid(conn: sqlite3.Connection, path: Path) -> int:
    return ssid_of(conn.execute(_QUERIES["ssid"]).fetchone(), path)


def _store_error(path: Path, exc: sqlite3.Error) -> JobStoreError:
    """Map a SQLite error: busy or unwritable is a plain store error, the rest is corruption."""
    if isinstance(
        exc, sqlite3.OperationalError | sqlite3.IntegrityError | sqlite3.ProgrammingError
    ):
        return JobStoreError(f"job store {path}: {exc}")
    if isinstance(exc, sqlite3.DatabaseError):
        return StoreCorrupt(path, str(exc))
    return JobStoreError(f"job store {path}: {exc}")


def _open(path: Path, timeout: float) -> sqlite3.Connection:
    """Open (creating if new) the database, check it is a readable job store, set it up."""
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _store_error(path, exc) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # a commit is on disk when it returns
        (check,) = conn.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise StoreCorrupt(path, f"integrity check failed: {check}")
        conn.execute("BEGIN IMMEDIATE")
        _migrate(conn, path)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        raise _store_error(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new database; refuse a database that is not ours."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    tables = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if version == 0:
        if tables - {"sqlite_sequence"}:
            raise StoreCorrupt(path, f"not a Fedra job store (it holds tables {sorted(tables)})")
        for statement in _SCHEMA:
            conn.execute(statement)
    elif version > SCHEMA_VERSION:
        raise StoreCorrupt(
            path, f"written by a newer Fedra (schema {version}; this one reads {SCHEMA_VERSION})"
        )
    elif not {"jobs", "transitions"} <= tables:
        raise StoreCorrupt(path, "the jobs or transitions table is missing")
    elif version == 1:  # schema 1 had no fencing session
        for statement in (*_SESSION, f"PRAGMA user_version = {SCHEMA_VERSION}"):
            conn.execute(statement)
    elif "session" not in tables:
        raise StoreCorrupt(path, "the fencing session table is missing")
    else:
        _current_ssid(conn, path)
