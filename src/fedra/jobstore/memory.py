"""An in-memory job store: records in a dict, files under a folder. For tests and simulation."""

from __future__ import annotations

import builtins
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fedra.core import JobStatus, JsonObject, StatusChange
from fedra.jobstore._base import NewJob, StoreBase, check_deletable, check_move
from fedra.jobstore.errors import JobExists, JobNotFound, JobStoreError
from fedra.jobstore.fencing import check_ssid, fence
from fedra.jobstore.files import JobFiles
from fedra.jobstore.record import JobRecord, copy_json, merge


class MemoryJobStore(StoreBase):
    """A :class:`~fedra.jobstore.JobStore` keeping records in memory and files under ``root``.

    One lock guards every record, so each operation (a transition's compare-and-set included)
    is atomic; the same lock guards the session id, so a fenced write is checked and done in
    one step. Records vanish with the process; files stay under ``root/jobs/<job_id>/``.
    """

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self._files = JobFiles(self.root)
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, JobRecord] = {}
        self._ssid = 0
        self._closed = False

    def get(self, job_id: str) -> JobRecord:
        """The job's record."""
        with self._lock:
            return _copy(self._get(job_id))

    def list(
        self, prefix: str | None = None, statuses: set[JobStatus] | None = None
    ) -> builtins.list[JobRecord]:
        """Jobs with an id starting with ``prefix`` and a status in ``statuses``, oldest first."""
        with self._lock:
            self._check_open()
            found = [
                _copy(r)
                for r in self._records.values()
                if (prefix is None or r.job_id.startswith(prefix))
                and (statuses is None or r.status in statuses)
            ]
        return sorted(found, key=lambda r: r.submitted_at)

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
        with self._write(ssid):
            record = self._get(job_id)
            check_move(job_id, record.status, new, expected)
            change = StatusChange(new, self._clock(), reason)
            record = dataclasses.replace(record, status=new, history=(*record.history, change))
            self._records[job_id] = record
            return _copy(record)

    def job_zip(self, job_id: str) -> bytes:
        """The zip the job was submitted as."""
        with self._lock:
            self._get(job_id)
            return self._files.read_zip(job_id)

    def workspace(self, job_id: str) -> Path:
        """The job's run folder, created if needed."""
        with self._lock:
            self._get(job_id)
            return self._files.workspace(job_id)

    def delete(self, job_id: str, *, ssid: int | None = None) -> None:
        """Delete a finished job and its files."""
        with self._write(ssid):
            check_deletable(job_id, self._get(job_id).status)
            del self._records[job_id]
            self._files.remove(job_id)

    def current_ssid(self) -> int:
        """The newest service session id the store has seen (0: none yet)."""
        with self._lock:
            self._check_open()
            return self._ssid

    def new_ssid(self) -> int:
        """Take the next session id, record it and return it."""
        with self._lock:
            self._check_open()
            self._ssid = check_ssid(self._ssid + 1)
            return self._ssid

    def close(self) -> None:
        """Forget the records (files stay); later calls raise JobStoreError."""
        with self._lock:
            self._closed = True
            self._records.clear()

    def _insert(self, job: NewJob, ssid: int | None) -> JobRecord:
        with self._write(ssid):
            if job.job_id in self._records:
                raise JobExists(job.job_id)
            self._files.write_zip(job.job_id, job.job_zip)
            now = self._clock()
            record = JobRecord(
                job_id=job.job_id,
                name=job.meta.name,
                submitter=job.submitter,
                submitted_at=now,
                status=JobStatus.SUBMITTED,
                history=(StatusChange(JobStatus.SUBMITTED, now, job.reason),),
                meta=job.meta,
            )
            self._records[job.job_id] = record
            return _copy(record)

    def _set_failure(self, job_id: str, failure: JsonObject, ssid: int | None) -> JobRecord:
        with self._write(ssid):
            record = dataclasses.replace(self._get(job_id), failure=failure)
            self._records[job_id] = record
            return _copy(record)

    def _update_run_info(self, job_id: str, update: JsonObject, ssid: int | None) -> JobRecord:
        with self._write(ssid):
            record = self._get(job_id)
            record = dataclasses.replace(record, run_info=merge(record.run_info, update))
            self._records[job_id] = record
            return _copy(record)

    @contextmanager
    def _write(self, ssid: int | None = None) -> Iterator[None]:
        """One write under the lock: its session id checked first, recorded if it succeeds."""
        with self._lock:
            self._check_open()
            before = self._ssid
            self._ssid = fence(before, ssid)
            try:
                yield
            except BaseException:
                self._ssid = before
                raise

    def _check_open(self) -> None:
        if self._closed:
            raise JobStoreError("the job store is closed")

    def _get(self, job_id: str) -> JobRecord:
        self._check_open()
        record = self._records.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record


def _copy(record: JobRecord) -> JobRecord:
    """A copy sharing no mutable state with the store."""
    return dataclasses.replace(
        record,
        failure=copy_json(record.failure) if record.failure is not None else None,
        run_info=copy_json(record.run_info),
    )
