"""The embedded job store: SQLite (``root/jobs.db``) for records, files under ``root/jobs/``.

Records and their status history live in two tables; the database runs in WAL mode, so readers
never block the writer. Every write is one ``BEGIN IMMEDIATE`` transaction, which makes a status
change a true compare-and-set between threads and between processes sharing the file. The
fencing session id (:mod:`fedra.store.fencing`) is one row, checked and updated inside the same
transaction as the write it guards. A file that is not a readable job database is reported as
:class:`~fedra.store.StoreCorrupt`, with its path, when the store opens.

SQLite's locks are only as good as the file system's: use a local disk, never a network file
system (NFS, SMB), whose locking SQLite cannot rely on.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from fedra.core import JobStatus, parse_meta, transition
from fedra.store.errors import (
    JobExists,
    JobNotFound,
    JobStillActive,
    JobStoreError,
    StatusConflict,
    StoreCorrupt,
)
from fedra.store.fencing import FencedJobStore, check_ssid, fence
from fedra.store.files import JobFiles
from fedra.store.record import (
    JobRecord,
    check_job_id,
    copy_json,
    decode_record,
    json_text,
    merge,
    new_job_id,
)

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
_LIST_JOBS = f"SELECT * FROM jobs WHERE {_SELECTED} ORDER BY submitted_at, seq"  # noqa: S608
_LIST_CHANGES = (
    "SELECT * FROM transitions"  # noqa: S608
    f" WHERE job_id IN (SELECT job_id FROM jobs WHERE {_SELECTED}) ORDER BY job_id, seq"
)


class SqliteJobStore:
    """A :class:`~fedra.store.JobStore` in ``root/jobs.db`` with files under ``root/jobs/``.

    Survives restarts: reopening the same ``root`` gives the same records and histories. One
    connection, guarded by a lock, serves every thread; ``timeout`` is how long a write waits
    for another process holding the database.
    """

    def __init__(
        self, root: Path, *, clock: Callable[[], float] = time.time, timeout: float = 30.0
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_FILE
        self._files = JobFiles(self.root)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = _open(self.path, timeout)

    def __enter__(self) -> SqliteJobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def create(
        self,
        meta_json: dict[str, Any],
        job_zip: bytes,
        submitter: str,
        job_id: str | None = None,
        *,
        ssid: int | None = None,
    ) -> JobRecord:
        """Store a new SUBMITTED job (``meta_json`` is validated); a uuid4 id unless given."""
        meta = parse_meta(meta_json)
        meta_text = json_text(meta_json, "meta.json")
        job_id = check_job_id(job_id) if job_id is not None else new_job_id()
        written = False
        try:
            with self._tx(immediate=True, ssid=ssid) as conn:
                if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone():
                    raise JobExists(job_id)
                self._files.write_zip(job_id, bytes(job_zip))
                written = True
                now = self._clock()
                conn.execute(
                    "INSERT INTO jobs (job_id, name, submitter, submitted_at, status, meta,"
                    " failure, run_info) VALUES (?, ?, ?, ?, ?, ?, NULL, '{}')",
                    (job_id, meta.name, submitter, now, JobStatus.SUBMITTED.value, meta_text),
                )
                _record_change(
                    conn, job_id, 0, JobStatus.SUBMITTED, now, f"submitted by {submitter}"
                )
                return self._load(conn, job_id)
        except BaseException:
            if written:
                self._files.remove(job_id)
            raise

    def get(self, job_id: str) -> JobRecord:
        """The job's record."""
        with self._tx() as conn:
            return self._load(conn, job_id)

    def list(
        self, prefix: str | None = None, statuses: set[JobStatus] | None = None
    ) -> builtins.list[JobRecord]:
        """Jobs with an id starting with ``prefix`` and a status in ``statuses``, oldest first."""
        wanted = None if statuses is None else json.dumps(sorted(s.value for s in statuses))
        params = (prefix, wanted)
        with self._tx() as conn:
            rows = conn.execute(_LIST_JOBS, params).fetchall()
            changes: dict[str, builtins.list[sqlite3.Row]] = {}
            for change in conn.execute(_LIST_CHANGES, params):
                changes.setdefault(change["job_id"], []).append(change)
        return [self._record(row, changes.get(row["job_id"], [])) for row in rows]

    def transition(
        self,
        job_id: str,
        new: JobStatus,
        reason: str,
        *,
        expected: JobStatus | None = None,
        ssid: int | None = None,
    ) -> JobRecord:
        """Move the job to ``new`` as the table allows; with ``expected``, compare-and-set."""
        with self._tx(immediate=True, ssid=ssid) as conn:
            current = self._status(conn, job_id)
            if expected is not None and current != expected:
                raise StatusConflict(job_id, current, expected, new)
            transition(current, new)
            (seq,) = conn.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM transitions WHERE job_id = ?", (job_id,)
            ).fetchone()
            updated = conn.execute(
                "UPDATE jobs SET status = ? WHERE job_id = ? AND status = ?",
                (new.value, job_id, current.value),
            )
            if updated.rowcount != 1:  # impossible while we hold the write lock
                raise JobStoreError(f"job {job_id!r} changed during its transition")
            _record_change(conn, job_id, seq, new, self._clock(), reason)
            return self._load(conn, job_id)

    def set_failure(
        self, job_id: str, failure: dict[str, Any], *, ssid: int | None = None
    ) -> JobRecord:
        """Record why the job failed, replacing any earlier failure."""
        text = json_text(failure, f"failure of job {job_id!r}")
        with self._tx(immediate=True, ssid=ssid) as conn:
            self._status(conn, job_id)
            conn.execute("UPDATE jobs SET failure = ? WHERE job_id = ?", (text, job_id))
            return self._load(conn, job_id)

    def update_run_info(
        self, job_id: str, info: dict[str, Any], *, ssid: int | None = None
    ) -> JobRecord:
        """Merge ``info`` into the job's run info (nested objects merged key by key)."""
        update = copy_json(info, f"run info of job {job_id!r}")
        with self._tx(immediate=True, ssid=ssid) as conn:
            merged = merge(self._load(conn, job_id).run_info, update)
            conn.execute(
                "UPDATE jobs SET run_info = ? WHERE job_id = ?",
                (json_text(merged, "run info"), job_id),
            )
            return self._load(conn, job_id)

    def job_zip(self, job_id: str) -> bytes:
        """The zip the job was submitted as."""
        with self._tx() as conn:
            self._status(conn, job_id)
            return self._files.read_zip(job_id)

    def workspace(self, job_id: str) -> Path:
        """The job's run folder, created if needed."""
        with self._tx() as conn:
            self._status(conn, job_id)
            return self._files.workspace(job_id)

    def delete(self, job_id: str, *, ssid: int | None = None) -> None:
        """Delete a finished job and its files."""
        with self._tx(immediate=True, ssid=ssid) as conn:
            status = self._status(conn, job_id)
            if not status.is_final:
                raise JobStillActive(job_id, status)
            conn.execute("DELETE FROM transitions WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        self._files.remove(job_id)

    def current_ssid(self) -> int:
        """The newest service session id the store has seen (0: none yet)."""
        with self._tx() as conn:
            return _current_ssid(conn, self.path)

    def claim_ssid(self, ssid: int) -> None:
        """Record ``ssid`` as the store's session; StaleSession if a newer one owns it."""
        with self._tx(immediate=True, ssid=check_ssid(ssid)):
            pass

    def new_ssid(self) -> int:
        """Take the next session id, record it and return it (one transaction)."""
        with self._tx(immediate=True) as conn:
            ssid = check_ssid(_current_ssid(conn, self.path) + 1)
            conn.execute("UPDATE session SET ssid = ? WHERE id = 1", (ssid,))
            return ssid

    def fenced(self, ssid: int) -> FencedJobStore:
        """A view of this store that writes as session ``ssid``."""
        return FencedJobStore(self, ssid)

    def close(self) -> None:
        """Close the database (idempotent); later calls raise JobStoreError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _tx(self, immediate: bool = False, ssid: int | None = None) -> Iterator[sqlite3.Connection]:
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
                            conn.execute("UPDATE session SET ssid = ? WHERE id = 1", (ssid,))
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc

    def _status(self, conn: sqlite3.Connection, job_id: str) -> JobStatus:
        row = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        try:
            return JobStatus(row["status"])
        except ValueError as exc:
            raise StoreCorrupt(self.path, f"job {job_id!r} has status {row['status']!r}") from exc

    def _load(self, conn: sqlite3.Connection, job_id: str) -> JobRecord:
        row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        changes = conn.execute(
            "SELECT * FROM transitions WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
        return self._record(row, changes)

    def _record(self, row: sqlite3.Row, changes: builtins.list[sqlite3.Row]) -> JobRecord:
        """Decode one row and its transitions; anything unreadable is StoreCorrupt."""
        return decode_record(row, changes, self.path)


def _current_ssid(conn: sqlite3.Connection, path: Path) -> int:
    row = conn.execute("SELECT ssid FROM session WHERE id = 1").fetchone()
    if row is None:
        raise StoreCorrupt(path, "the fencing session row is missing")
    return int(row[0])


def _record_change(
    conn: sqlite3.Connection, job_id: str, seq: int, status: JobStatus, at: float, reason: str
) -> None:
    conn.execute(
        "INSERT INTO transitions (job_id, seq, status, at, reason) VALUES (?, ?, ?, ?, ?)",
        (job_id, seq, status.value, at, reason),
    )


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
