"""The job store interface, which every backend implements and one contract test checks."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from fedra.core import JobStatus, JsonCompatible
from fedra.jobstore.record import JobRecord


@runtime_checkable
class JobStore(Protocol):
    """Jobs, their status history, their zips and their run folders.

    Every status change goes through the core transition table, atomically: of two callers
    racing from the same status, with ``expected`` set, exactly one wins. Unknown ids raise
    :class:`~fedra.jobstore.JobNotFound`.

    Every write takes an optional service session id (``ssid``, see :mod:`fedra.jobstore.fencing`):
    a write from a session older than the newest one the store has seen raises
    :class:`~fedra.jobstore.StaleSession` and changes nothing; a newer one is recorded with the
    write, atomically.
    """

    def create(
        self,
        meta_json: Mapping[str, JsonCompatible],
        job_zip: bytes,
        submitter: str,
        job_id: str | None = None,
        *,
        ssid: int | None = None,
    ) -> JobRecord:
        """Store a new SUBMITTED job (``meta_json`` is validated); a uuid4 id unless given."""
        ...

    def get(self, job_id: str) -> JobRecord:
        """The job's record."""
        ...

    def list(
        self, prefix: str | None = None, statuses: set[JobStatus] | None = None
    ) -> builtins.list[JobRecord]:
        """Jobs with an id starting with ``prefix`` and a status in ``statuses``, oldest first."""
        ...

    def transition(
        self,
        job_id: str,
        new: JobStatus,
        reason: str,
        *,
        expected: JobStatus | None = None,
        ssid: int | None = None,
    ) -> JobRecord:
        """Move the job to ``new`` (recorded with time and reason), as the table allows.

        With ``expected``, the move happens only if the job is still in that status
        (compare-and-set); otherwise :class:`~fedra.jobstore.StatusConflict` is raised.
        """
        ...

    def set_failure(
        self, job_id: str, failure: Mapping[str, JsonCompatible], *, ssid: int | None = None
    ) -> JobRecord:
        """Record why the job failed (site, task, traceback, reason), replacing any earlier one."""
        ...

    def update_run_info(
        self, job_id: str, info: Mapping[str, JsonCompatible], *, ssid: int | None = None
    ) -> JobRecord:
        """Merge ``info`` into the job's run info (nested objects merged key by key)."""
        ...

    def job_zip(self, job_id: str) -> bytes:
        """The zip the job was submitted as."""
        ...

    def workspace(self, job_id: str) -> Path:
        """The folder for the job's run outputs (models, tb_events, snapshots), made if needed."""
        ...

    def delete(self, job_id: str, *, ssid: int | None = None) -> None:
        """Delete a finished job with its files; :class:`~fedra.jobstore.JobStillActive`
        otherwise."""
        ...

    def current_ssid(self) -> int:
        """The newest service session id the store has seen (0: none yet)."""
        ...

    def claim_ssid(self, ssid: int) -> None:
        """Record ``ssid`` as the store's session; :class:`~fedra.jobstore.StaleSession` if older.

        Claiming the current SSID again is allowed (a restart of the same session).
        """
        ...

    def new_ssid(self) -> int:
        """Take the next session id (current + 1), record it and return it, atomically."""
        ...

    def fenced(self, ssid: int) -> JobStore:
        """A view of this store that writes as session ``ssid`` (reads unchanged)."""
        ...

    def close(self) -> None:
        """Release the store's resources; later calls raise
        :class:`~fedra.jobstore.JobStoreError`."""
        ...
