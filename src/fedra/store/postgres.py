"""The PostgreSQL job store: records in a database several servers share, files in a folder.

For high availability across hosts: every server (hot and standby) opens the same database by
its DSN and the same shared folder (``root``) for the jobs' zips and run folders. Records,
status histories and the fencing session id live in one schema (``fedra`` unless told), created
on first use. Every write is one transaction at READ COMMITTED that locks what it changes: a
transition locks the job's row (``SELECT ... FOR UPDATE``) before it checks the table, so of two
servers racing from the same status exactly one wins; a fenced write first updates and so locks
the session row (see :mod:`fedra.store.fencing`). Reads run at REPEATABLE READ, so a listing is one
consistent snapshot. A dropped connection is opened again on the next call.

psycopg 3 is imported only when a store is opened: the core install does not need it
(``pip install 'fedra[postgres]'``).
"""

from __future__ import annotations

import builtins
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fedra.core import JobStatus, parse_meta, transition
from fedra.store.errors import (
    JobExists,
    JobNotFound,
    JobStillActive,
    JobStoreError,
    StaleSession,
    StatusConflict,
    StoreCorrupt,
)
from fedra.store.fencing import FencedJobStore, check_ssid
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

if TYPE_CHECKING:
    import psycopg

    Cursor = psycopg.Cursor[dict[str, Any]]

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
_QUERIES = {
    "tables": """SELECT c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
    "info": "SELECT version, ssid FROM {info} WHERE id = 1",
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
    "lock": "SELECT status FROM {jobs} WHERE job_id = %s FOR UPDATE",
    "status": "SELECT status FROM {jobs} WHERE job_id = %s",
    "next_seq": "SELECT COALESCE(MAX(seq), -1) + 1 AS seq FROM {transitions} WHERE job_id = %s",
    "set_status": "UPDATE {jobs} SET status = %s WHERE job_id = %s AND status = %s",
    "set_failure": "UPDATE {jobs} SET failure = %s WHERE job_id = %s",
    "run_info": "SELECT run_info FROM {jobs} WHERE job_id = %s FOR UPDATE",
    "set_run_info": "UPDATE {jobs} SET run_info = %s WHERE job_id = %s",
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


class PostgresJobStore:
    """A :class:`~fedra.store.JobStore` in a PostgreSQL database, files under ``root``.

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
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        try:
            with self._tx(write=True) as cur:
                self._migrate(cur)
            self._files = JobFiles(self.root)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PostgresJobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresJobStore({self.where}, root={str(self.root)!r})"

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
            with self._tx(write=True, ssid=ssid) as cur:
                now = self._clock()
                values = (job_id, meta.name, submitter, now, JobStatus.SUBMITTED.value, meta_text)
                if cur.execute(self._q["insert"], values).fetchone() is None:
                    raise JobExists(job_id)
                # The new row holds the id until commit: a racing create of the same id waits
                # here, then finds it taken, and never touches these files.
                changed = (job_id, 0, JobStatus.SUBMITTED.value, now, f"submitted by {submitter}")
                cur.execute(self._q["change"], changed)
                written = True
                self._files.write_zip(job_id, bytes(job_zip))
                record = self._load(cur, job_id)
                # Only COMMIT is left. Should it fail, the row may or may not be stored (a lost
                # connection): a zip without a record is the harmless leftover, not the reverse.
                written = False
            return record
        except BaseException:
            if written:
                self._files.remove(job_id)
            raise

    def get(self, job_id: str) -> JobRecord:
        """The job's record."""
        with self._tx() as cur:
            return self._load(cur, job_id)

    def list(
        self, prefix: str | None = None, statuses: set[JobStatus] | None = None
    ) -> builtins.list[JobRecord]:
        """Jobs with an id starting with ``prefix`` and a status in ``statuses``, oldest first."""
        wanted = None if statuses is None else sorted(s.value for s in statuses)
        params = {"prefix": prefix, "statuses": wanted}
        with self._tx() as cur:
            rows = cur.execute(self._q["list"], params).fetchall()
            changes: dict[str, builtins.list[dict[str, Any]]] = {}
            for change in cur.execute(self._q["list_changes"], params):
                changes.setdefault(change["job_id"], []).append(change)
        return [decode_record(row, changes.get(row["job_id"], []), self.where) for row in rows]

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
        with self._tx(write=True, ssid=ssid) as cur:
            current = self._status(cur, job_id, lock=True)
            if expected is not None and current != expected:
                raise StatusConflict(job_id, current, expected, new)
            transition(current, new)
            row = cur.execute(self._q["next_seq"], (job_id,)).fetchone()
            seq = 0 if row is None else int(row["seq"])
            cur.execute(self._q["set_status"], (new.value, job_id, current.value))
            if cur.rowcount != 1:  # impossible while we hold the row lock
                raise JobStoreError(f"job {job_id!r} changed during its transition")
            cur.execute(self._q["change"], (job_id, seq, new.value, self._clock(), reason))
            return self._load(cur, job_id)

    def set_failure(
        self, job_id: str, failure: dict[str, Any], *, ssid: int | None = None
    ) -> JobRecord:
        """Record why the job failed, replacing any earlier failure."""
        text = json_text(failure, f"failure of job {job_id!r}")
        with self._tx(write=True, ssid=ssid) as cur:
            self._status(cur, job_id, lock=True)
            cur.execute(self._q["set_failure"], (text, job_id))
            return self._load(cur, job_id)

    def update_run_info(
        self, job_id: str, info: dict[str, Any], *, ssid: int | None = None
    ) -> JobRecord:
        """Merge ``info`` into the job's run info (nested objects merged key by key)."""
        update = copy_json(info, f"run info of job {job_id!r}")
        with self._tx(write=True, ssid=ssid) as cur:
            row = cur.execute(self._q["run_info"], (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            try:
                old = json.loads(row["run_info"])
            except ValueError as exc:
                raise StoreCorrupt(self.where, f"job {job_id!r} has unreadable run info") from exc
            merged = json_text(merge(old, update), "run info")
            cur.execute(self._q["set_run_info"], (merged, job_id))
            return self._load(cur, job_id)

    def job_zip(self, job_id: str) -> bytes:
        """The zip the job was submitted as."""
        with self._tx() as cur:
            self._status(cur, job_id)
        return self._files.read_zip(job_id)

    def workspace(self, job_id: str) -> Path:
        """The job's run folder, created if needed."""
        with self._tx() as cur:
            self._status(cur, job_id)
        return self._files.workspace(job_id)

    def delete(self, job_id: str, *, ssid: int | None = None) -> None:
        """Delete a finished job and its files."""
        with self._tx(write=True, ssid=ssid) as cur:
            status = self._status(cur, job_id, lock=True)
            if not status.is_final:
                raise JobStillActive(job_id, status)
            cur.execute(self._q["delete"], (job_id,))
        self._files.remove(job_id)

    def current_ssid(self) -> int:
        """The newest service session id the store has seen (0: none yet)."""
        with self._tx() as cur:
            return self._info(cur)[1]

    def claim_ssid(self, ssid: int) -> None:
        """Record ``ssid`` as the store's session; StaleSession if a newer one owns it."""
        with self._tx(write=True, ssid=check_ssid(ssid)):
            pass

    def new_ssid(self) -> int:
        """Take the next session id, record it and return it (one statement)."""
        with self._tx(write=True) as cur:
            row = cur.execute(self._q["next_ssid"]).fetchone()
            if row is None:
                raise StoreCorrupt(self.where, "the fencing session row is missing")
            return check_ssid(int(row["ssid"]))

    def fenced(self, ssid: int) -> FencedJobStore:
        """A view of this store that writes as session ``ssid``."""
        return FencedJobStore(self, ssid)

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise JobStoreError."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _tx(self, *, write: bool = False, ssid: int | None = None) -> Iterator[Cursor]:
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

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        import psycopg
        from psycopg import conninfo
        from psycopg.rows import dict_row

        given = conninfo.conninfo_to_dict(self._dsn)
        extra: dict[str, Any] = {}
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
        row = cur.execute(self._q["fence"], (check_ssid(ssid),)).fetchone()
        if row is None:
            raise StoreCorrupt(self.where, "the fencing session row is missing")
        current = int(row["ssid"])
        if current > ssid:
            raise StaleSession(ssid, current)

    def _info(self, cur: Cursor) -> tuple[int, int]:
        row = cur.execute(self._q["info"]).fetchone()
        if row is None:
            raise StoreCorrupt(self.where, "the fencing session row is missing")
        return int(row["version"]), int(row["ssid"])

    def _migrate(self, cur: Cursor) -> None:
        """Create the schema in a new database; refuse one that is not ours or is newer."""
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        tables = {r["relname"] for r in cur.execute(self._q["tables"], (self.schema,))}
        if not tables:
            for statement in self._create:
                cur.execute(statement)
            return
        if "fedra_store" not in tables:
            raise StoreCorrupt(
                self.where, f"not a Fedra job store (the schema holds tables {sorted(tables)})"
            )
        version, _ = self._info(cur)
        if version > PG_SCHEMA_VERSION:
            raise StoreCorrupt(
                self.where,
                f"written by a newer Fedra (schema {version}; this one reads {PG_SCHEMA_VERSION})",
            )
        if not {"jobs", "transitions"} <= tables:
            raise StoreCorrupt(self.where, "the jobs or transitions table is missing")

    def _status(self, cur: Cursor, job_id: str, lock: bool = False) -> JobStatus:
        row = cur.execute(self._q["lock" if lock else "status"], (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        try:
            return JobStatus(row["status"])
        except ValueError as exc:
            raise StoreCorrupt(self.where, f"job {job_id!r} has status {row['status']!r}") from exc

    def _load(self, cur: Cursor, job_id: str) -> JobRecord:
        row = cur.execute(self._q["job"], (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        changes = cur.execute(self._q["changes"], (job_id,)).fetchall()
        return decode_record(row, changes, self.where)
