"""The PostgreSQL job store: records in a database several servers share, files in a folder.

For high availability across hosts: every server (hot and standby) opens the same database by
its DSN and the same shared folder (``root``) for the jobs' zips and run folders. Records,
status histories and the fencing session id live in one schema (``fedra`` unless told), created
on first use. Every write is one transaction at READ COMMITTED that locks what it changes: a
transition locks the job's row (``SELECT ... FOR UPDATE``) before it checks the table, so of two
servers racing from the same status exactly one wins; a fenced write first updates and so locks
the session row (see :mod:`fedra.jobstore.fencing`). Reads run at REPEATABLE READ, so a
listing is one consistent snapshot. A dropped connection is opened again on the next call.

psycopg 3 is imported only when a store is opened: the core install does not need it
(``pip install 'fedra[postgres]'``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

from fedra.core import JobStatus
from fedra.jobstore._base import NewJob
from fedra.jobstore._sql import SqlJobStore, first_change, insert_params, ssid_of
from fedra.jobstore.errors import JobExists, JobStoreError, StaleSession, StoreCorrupt
from fedra.jobstore.fencing import check_ssid
from fedra.jobstore.files import JobFiles
from fedra.jobstore.record import JobRecord

#: A row of the store's tables, by column name: every column is text, an integer or a double
#: (``failure`` may be NULL).
Row: TypeAlias = dict[str, str | int | float | None]

if TYPE_CHECKING:
    import psycopg

    Cursor = psycopg.Cursor[Row]

PG_SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "fedra"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Serialises schema creation between servers opening a new database at once.
_MIGRATION_LOCK = 0x46454452415354  # "FEDRAST"
_COLUMNS = "j.job_id, j.name, j.submitter, j.submitted_at, j.status, j.meta, j.failure, j.run_info"
_SELECTED = """(%(prefix)s::text IS NULL OR starts_with(j.job_id, %(prefix)s::text))
    AND (%(statuses)s::text[] IS NULL OR j.status = ANY(%(statuses)s::text[]))"""

# {info}, {jobs}, {transitions}, {by_time}, {schema} are identifiers filled in per store;
# {columns}, {selected} and {version} are the fragments and the value above.
_CREATE = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE {info} (
        id integer PRIMARY KEY CHECK (id = 1),
        version integer NOT NULL,
        ssid bigint NOT NULL
    )""",
    """CREATE TABLE {jobs} (
        seq bigserial PRIMARY KEY,
        job_id text NOT NULL UNIQUE,
        name text NOT NULL,
        submitter text NOT NULL,
        submitted_at double precision NOT NULL,
        status text NOT NULL,
        meta text NOT NULL,
        failure text,
        run_info text NOT NULL
    )""",
    """CREATE TABLE {transitions} (
        job_id text NOT NULL REFERENCES {jobs} (job_id) ON DELETE CASCADE,
        seq integer NOT NULL,
        status text NOT NULL,
        at double precision NOT NULL,
        reason text NOT NULL,
        PRIMARY KEY (job_id, seq)
    )""",
    "CREATE INDEX {by_time} ON {jobs} (submitted_at, seq)",
    "INSERT INTO {info} (id, version, ssid) VALUES (1, {version}, 0)",
)
# The statements: those fedra.jobstore._sql names, and this backend's own (tables, version, fence,
# next_ssid, insert).
_QUERIES = {
    "tables": """SELECT c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
    "version": "SELECT version FROM {info} WHERE id = 1",
    "ssid": "SELECT ssid FROM {info} WHERE id = 1",
    # Records the ssid if newer and locks the row until commit, in one round trip.
    "fence": "UPDATE {info} SET ssid = GREATEST(ssid, %s) WHERE id = 1 RETURNING ssid",
    "next_ssid": "UPDATE {info} SET ssid = ssid + 1 WHERE id = 1 RETURNING ssid",
    "insert": """INSERT INTO {jobs}
        (job_id, name, submitter, submitted_at, status, meta, failure, run_info)
        VALUES (%s, %s, %s, %s, %s, %s, NULL, '{{}}')
        ON CONFLICT (job_id) DO NOTHING RETURNING seq""",
    "change": """INSERT INTO {transitions} (job_id, seq, status, at, reason)
        VALUES (%s, %s, %s, %s, %s)""",
    "job": "SELECT {columns} FROM {jobs} j WHERE j.job_id = %s",
    "changes": "SELECT status, at, reason FROM {transitions} WHERE job_id = %s ORDER BY seq",
    # The row lock that makes a write's checks hold until COMMIT (READ COMMITTED locks nothing).
    "lock": "SELECT status FROM {jobs} WHERE job_id = %s FOR UPDATE",
    "status": "SELECT status FROM {jobs} WHERE job_id = %s",
    "next_seq": "SELECT COALESCE(MAX(seq), -1) + 1 AS seq FROM {transitions} WHERE job_id = %s",
    "set_status": "UPDATE {jobs} SET status = %s WHERE job_id = %s AND status = %s",
    "set_failure": "UPDATE {jobs} SET failure = %s WHERE job_id = %s",
    "run_info": "SELECT run_info FROM {jobs} WHERE job_id = %s FOR UPDATE",
    "set_run_info": "UPDATE {jobs} SET run_info = %s WHERE job_id = %s",
    "delete_changes": "DELETE FROM {transitions} WHERE job_id = %s",
    "delete": "DELETE FROM {jobs} WHERE job_id = %s",
    "list": """SELECT {columns} FROM {jobs} j WHERE {selected}
        ORDER BY j.submitted_at, j.seq""",
    "list_changes": """SELECT t.job_id, t.status, t.at, t.reason
        FROM {transitions} t JOIN {jobs} j ON j.job_id = t.job_id
        WHERE {selected} ORDER BY t.job_id, t.seq""",
}


def check_schema(schema: str) -> str:
    """Return ``schema`` if it is a plain lower-case SQL name, else ValueError."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"invalid PostgreSQL schema name {schema!r}: expected 1-63 lower-case letters, "
            "digits or '_', not starting with a digit"
        )
    return schema


def describe_dsn(dsn: str) -> str:
    """``dsn`` without its secrets, for messages: ``postgresql://user@host:port/dbname``."""
    from psycopg import conninfo

    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError; its text may quote the password
        raise ValueError(
            "invalid PostgreSQL DSN: expected 'host=... dbname=... user=...' or a "
            "postgresql://user@host:port/dbname URL"
        ) from exc
    user = params.get("user") or "(default user)"
    host = params.get("host") or params.get("hostaddr") or "(local socket)"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or user
    return f"postgresql://{user}@{host}:{port}/{dbname}"


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        error = JobStoreError("the PostgreSQL job store needs psycopg 3, which is not installed")
        error.hint = "pip install 'fedra[postgres]'"
        raise error from exc


class _ConnectOptions(TypedDict, total=False):
    """Connection parameters the store sets when the DSN does not."""

    connect_timeout: int
    application_name: str


class PostgresJobStore(SqlJobStore):
    """A :class:`~fedra.jobstore.JobStore` in a PostgreSQL database, files under ``root``.

    ``dsn`` is a libpq connection string or URL (keep the password out of it: libpq reads
    ``PGPASSWORD``, ``~/.pgpass`` or ``passfile=``). ``root`` holds the jobs' zips and run
    folders; every server sharing the database must see the same ``root`` (a shared folder).
    Several stores (in one process or on several hosts) may use one database at once. One
    connection, guarded by a lock, serves every thread; ``timeout`` bounds how long a write
    waits for a row another server holds.
    """

    def __init__(
        self,
        dsn: str,
        root: Path,
        *,
        schema: str = DEFAULT_SCHEMA,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        _require_psycopg()
        from psycopg import sql

        self.schema = check_schema(schema)
        self.where = f"{describe_dsn(dsn)} (schema {schema})"
        self.root = Path(root)
        self._dsn = dsn
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.RLock()
        names = {
            "schema": sql.Identifier(schema),
            "info": sql.Identifier(schema, "fedra_store"),
            "jobs": sql.Identifier(schema, "jobs"),
            "transitions": sql.Identifier(schema, "transitions"),
            "by_time": sql.Identifier("jobs_by_time"),
            "columns": sql.SQL(_COLUMNS),
            "selected": sql.SQL(_SELECTED),
            "version": sql.Literal(PG_SCHEMA_VERSION),
        }
        self._create = [sql.SQL(s).format(**names) for s in _CREATE]
        self._q = {k: sql.SQL(s).format(**names) for k, s in _QUERIES.items()}
        self._closed = False
        self._conn: psycopg.Connection[Row] | None = None
        try:
            with self._write() as cur:
                self._migrate(cur)
            self._files = JobFiles(self.root)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresJobStore({self.where}, root={str(self.root)!r})"

    def new_ssid(self) -> int:
        """Take the next session id, record it and return it (one statement)."""
        with self._write() as cur:
            return check_ssid(ssid_of(cur.execute(self._q["next_ssid"]).fetchone(), self.where))

    def _insert(self, job: NewJob, ssid: int | None) -> JobRecord:
        """Insert the rows first (the new row holds the id), then write the zip."""
        written = False
        try:
            with self._write(ssid) as cur:
                now = self._clock()
                if cur.execute(self._q["insert"], insert_params(job, now)).fetchone() is None:
                    raise JobExists(job.job_id)
                # The new row holds the id until commit: a racing create of the same id waits
                # here, then finds it taken, and never touches these files.
                cur.execute(self._q["change"], first_change(job, now))
                written = True
                self._files.write_zip(job.job_id, job.job_zip)
                record = self._load(cur, job.job_id)
                # Only COMMIT is left. Should it fail, the row may or may not be stored (a lost
                # connection): a zip without a record is the harmless leftover, not the reverse.
                written = False
            return record
        except BaseException:
            if written:
                self._files.remove(job.job_id)
            raise

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise JobStoreError."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals ---------------------------------------------------------------------------

    def _read(self) -> AbstractContextManager[Cursor]:
        """REPEATABLE READ, read only: one consistent snapshot, locking nothing."""
        return self._tx(write=False)

    def _write(self, ssid: int | None = None) -> AbstractContextManager[Cursor]:
        """READ COMMITTED: the statements named ``lock`` and ``run_info`` lock the job's row."""
        return self._tx(write=True, ssid=ssid)

    def _list_params(self, prefix: str | None, statuses: set[JobStatus] | None) -> Any:
        wanted = None if statuses is None else sorted(s.value for s in statuses)
        return {"prefix": prefix, "statuses": wanted}

    @contextmanager
    def _tx(self, *, write: bool, ssid: int | None = None) -> Iterator[Cursor]:
        """One transaction, under the lock; database errors become store errors.

        Writes run at READ COMMITTED and lock the rows they change; reads at REPEATABLE READ,
        read only. With ``ssid``, the session is fenced first, inside the transaction.
        """
        import psycopg

        with self._lock:
            try:
                cur = self._begin(write)
                try:
                    if ssid is not None:
                        self._fence(cur, ssid)
                    yield cur
                except BaseException:
                    self._rollback(cur)
                    raise
                else:
                    cur.execute("COMMIT")
                finally:
                    cur.close()
            except psycopg.Error as exc:
                raise self._error(exc) from exc

    def _begin(self, write: bool) -> Cursor:
        """A cursor inside a new transaction; a connection found dropped is opened again."""
        import psycopg

        begin = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        if self._closed:
            raise JobStoreError(f"the job store {self.where} is closed")
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        try:
            return self._conn.cursor().execute(begin)
        except psycopg.OperationalError:
            if not (self._conn.closed or self._conn.broken):
                raise
        # Nothing was sent but BEGIN: opening a new connection and starting again is safe.
        self._conn.close()
        self._conn = self._connect()
        return self._conn.cursor().execute(begin)

    def _connect(self) -> psycopg.Connection[Row]:
        import psycopg
        from psycopg import conninfo
        from psycopg.rows import dict_row

        given = conninfo.conninfo_to_dict(self._dsn)
        extra: _ConnectOptions = {}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = max(1, round(self._timeout))
        if "application_name" not in given:
            extra["application_name"] = "fedra-job-store"
        conn = psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row, **extra)
        try:
            lock_timeout = f"{max(1, round(self._timeout * 1000))}ms"
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
        except BaseException:
            conn.close()
            raise
        return conn

    def _rollback(self, cur: Cursor) -> None:
        import psycopg

        if self._conn is not None and not self._conn.broken:
            with suppress(psycopg.Error):
                cur.execute("ROLLBACK")

    def _error(self, exc: Exception) -> JobStoreError:
        """Map a psycopg error to a store error naming the database (never its password)."""
        from psycopg import errors

        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn):
            return StoreCorrupt(self.where, detail)
        error = JobStoreError(f"job store {self.where}: {detail}")
        if isinstance(exc, errors.LockNotAvailable):
            error.hint = "another server holds the job's row: try again"
        elif isinstance(exc, errors.OperationalError):
            error.hint = "is the database server running and reachable? (the next call reconnects)"
        return error

    def _fence(self, cur: Cursor, ssid: int) -> None:
        """Record ``ssid`` if newer, lock the session row, refuse if a newer one owns it.

        The row stays locked until the transaction ends: a claim by another server waits for
        this write, so no write checked against an older session can land after the claim.
        """
        current = ssid_of(cur.execute(self._q["fence"], (check_ssid(ssid),)).fetchone(), self.where)
        if current > ssid:
            raise StaleSession(ssid, current)

    def _version(self, cur: Cursor) -> int:
        row = cur.execute(self._q["version"]).fetchone()
        if row is None:
            raise StoreCorrupt(self.where, "the fencing session row is missing")
        version = row["version"]
        if not isinstance(version, int):
            raise StoreCorrupt(self.where, f"the schema version is {version!r}, not an integer")
        return version

    def _migrate(self, cur: Cursor) -> None:
        """Create the schema in a new database; refuse one that is not ours or is newer."""
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        tables = {str(r["relname"]) for r in cur.execute(self._q["tables"], (self.schema,))}
        if not tables:
            for statement in self._create:
                cur.execute(statement)
            return
        if "fedra_store" not in tables:
            raise StoreCorrupt(
                self.where, f"not a Fedra job store (the schema holds tables {sorted(tables)})"
            )
        version = self._version(cur)
        if version > PG_SCHEMA_VERSION:
            raise StoreCorrupt(
                self.where,
                f"written by a newer Fedra (schema {version}; this one reads {PG_SCHEMA_VERSION})",
            )
        if not {"jobs", "transitions"} <= tables:
            raise StoreCorrupt(self.where, "the jobs or transitions table is missing")
