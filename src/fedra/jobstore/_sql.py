"""The half of a SQL job store that is the same in every database: SQLite's and PostgreSQL's.

Both SQL backends keep the same two tables (``jobs`` and ``transitions``) and the same session
row, and run each operation as one transaction. :class:`SqlJobStore` holds the operations written
once against a small dialect: a table of statements (``_q``, by name, in the database's own SQL
and parameter style) and two transactions, ``_read`` and ``_write``. Each backend's module keeps
what really differs, explicit: how a write locks (SQLite's ``BEGIN IMMEDIATE`` takes the
database's write lock at once; PostgreSQL locks the rows it reads with ``SELECT ... FOR
UPDATE``, the statement named ``lock``), how the session is fenced, how a job is inserted, and
the connection.

Statements every dialect names (each takes the job id as its only parameter unless told):
``job`` and ``changes`` (a record and its history, oldest first); ``status``; ``lock`` (the
status, locking the job's row until the transaction ends where the database needs it);
``next_seq`` (the next history number, as ``seq``); ``set_status`` (new, job id, old);
``change`` (job id, seq, status, at, reason); ``set_failure`` and ``set_run_info`` (value, job
id); ``run_info`` (locking as ``lock`` does); ``delete_changes`` then ``delete``; ``list`` and
``list_changes`` (the parameters of :meth:`SqlJobStore._list_params`); ``ssid`` (no parameter).
"""

from __future__ import annotations

import builtins
import json
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from fedra.core import JobStatus, JsonObject
from fedra.jobstore._base import NewJob, StoreBase, check_deletable, check_move
from fedra.jobstore.errors import JobNotFound, JobStoreError, StoreCorrupt
from fedra.jobstore.files import JobFiles
from fedra.jobstore.record import JobRecord, decode_record, json_text, merge


class Cursor(Protocol):
    """What the shared operations need of a connection or cursor: ``execute`` returning rows.

    Rows are indexable by column name (:class:`sqlite3.Row`, psycopg's ``dict_row``).
    """

    def execute(self, query: Any, params: Any = ..., /) -> Any:
        """Run ``query``; the result has ``fetchone``, ``fetchall`` and ``rowcount``."""
        ...


def insert_params(job: NewJob, now: float) -> tuple[Any, ...]:
    """The values of a new job's row: job id, name, submitter, submitted at, status, meta."""
    return (job.job_id, job.meta.name, job.submitter, now, JobStatus.SUBMITTED.value, job.meta_text)


def first_change(job: NewJob, now: float) -> tuple[Any, ...]:
    """The values of a new job's first history row (``change``): SUBMITTED, number 0."""
    return (job.job_id, 0, JobStatus.SUBMITTED.value, now, job.reason)


def ssid_of(row: Any, where: Path | str) -> int:
    """The ``ssid`` column of the session row; :class:`~fedra.jobstore.StoreCorrupt` if no row."""
    if row is None:
        raise StoreCorrupt(where, "the fencing session row is missing")
    return int(row["ssid"])


def group_changes(rows: Iterable[Any]) -> dict[str, builtins.list[Any]]:
    """History rows (ordered by job, then number) grouped by their ``job_id``."""
    changes: dict[str, builtins.list[Any]] = {}
    for change in rows:
        changes.setdefault(change["job_id"], []).append(change)
    return changes


class SqlJobStore(StoreBase):
    """A :class:`~fedra.jobstore.JobStore` over SQL tables; a backend gives the dialect.

    A subclass sets ``where`` (the database, for messages), ``_files``, ``_clock`` and ``_q`` (the
    statements), and implements ``_read``, ``_write``, ``_list_params``, ``_insert``, ``new_ssid``
    and ``close``.
    """

    where: Path | str
    _files: JobFiles
    _clock: Callable[[], float]
    _q: Mapping[str, Any]

    def get(self, job_id: str) -> JobRecord:
        """The job's record."""
        with self._read() as cur:
            return self._load(cur, job_id)

    def list(
        self, prefix: str | None = None, statuses: set[JobStatus] | None = None
    ) -> builtins.list[JobRecord]:
        """Jobs with an id starting with ``prefix`` and a status in ``statuses``, oldest first."""
        params = self._list_params(prefix, statuses)
        with self._read() as cur:  # one transaction: the jobs and their histories agree
            rows = cur.execute(self._q["list"], params).fetchall()
            changes = group_changes(cur.execute(self._q["list_changes"], params))
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
        with self._write(ssid) as cur:
            current = self._status(cur, job_id, lock=True)
            check_move(job_id, current, new, expected)
            seq = int(cur.execute(self._q["next_seq"], (job_id,)).fetchone()["seq"])
            updated = cur.execute(self._q["set_status"], (new.value, job_id, current.value))
            if updated.rowcount != 1:  # impossible while the write holds its lock
                raise JobStoreError(f"job {job_id!r} changed during its transition")
            cur.execute(self._q["change"], (job_id, seq, new.value, self._clock(), reason))
            return self._load(cur, job_id)

    def job_zip(self, job_id: str) -> bytes:
        """The zip the job was submitted as."""
        with self._read() as cur:
            self._status(cur, job_id)
        return self._files.read_zip(job_id)

    def workspace(self, job_id: str) -> Path:
        """The job's run folder, created if needed."""
        with self._read() as cur:
            self._status(cur, job_id)
        return self._files.workspace(job_id)

    def delete(self, job_id: str, *, ssid: int | None = None) -> None:
        """Delete a finished job and its files."""
        with self._write(ssid) as cur:
            check_deletable(job_id, self._status(cur, job_id, lock=True))
            cur.execute(self._q["delete_changes"], (job_id,))
            cur.execute(self._q["delete"], (job_id,))
        self._files.remove(job_id)

    def current_ssid(self) -> int:
        """The newest service session id the store has seen (0: none yet)."""
        with self._read() as cur:
            return ssid_of(cur.execute(self._q["ssid"]).fetchone(), self.where)

    # -- the shared halves of the writes StoreBase checks ------------------------------------

    def _set_failure(self, job_id: str, failure: JsonObject, ssid: int | None) -> JobRecord:
        text = json_text(failure, f"failure of job {job_id!r}")
        with self._write(ssid) as cur:
            self._status(cur, job_id, lock=True)
            cur.execute(self._q["set_failure"], (text, job_id))
            return self._load(cur, job_id)

    def _update_run_info(self, job_id: str, update: JsonObject, ssid: int | None) -> JobRecord:
        with self._write(ssid) as cur:
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

    def _status(self, cur: Cursor, job_id: str, lock: bool = False) -> JobStatus:
        """The job's status (with ``lock``, through the dialect's locking ``lock`` statement)."""
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

    # -- what each SQL backend provides ------------------------------------------------------

    @abstractmethod
    def _read(self) -> AbstractContextManager[Cursor]:
        """One read-only transaction: a consistent view of the tables."""

    @abstractmethod
    def _write(self, ssid: int | None = None) -> AbstractContextManager[Cursor]:
        """One write transaction, ``ssid`` fenced first inside it, committed when it ends."""

    @abstractmethod
    def _list_params(self, prefix: str | None, statuses: set[JobStatus] | None) -> Any:
        """The parameters of ``list`` and ``list_changes`` (None: no filter)."""
