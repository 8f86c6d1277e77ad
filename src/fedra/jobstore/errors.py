"""Errors of the job store, all under :class:`fedra.core.FedraError`.

::

    FedraError
    ├── JobStoreError              the store cannot do what was asked
    │   ├── JobNotFound            no job has this id
    │   ├── JobExists              a job with this id already exists
    │   ├── JobStillActive         only finished jobs can be deleted
    │   ├── StaleSession           a newer service session (SSID) owns the store: write refused
    │   └── StoreCorrupt           the database or a job's files are unreadable
    └── InvalidTransition          (core) the transition table refuses the move
        └── StatusConflict         the job is no longer in the status the caller expected
"""

from __future__ import annotations

from pathlib import Path

from fedra.core import FedraError, InvalidTransition, JobStatus


class JobStoreError(FedraError):
    """The job store cannot do what was asked."""


class JobNotFound(JobStoreError):
    """No job has the id asked for."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")
        self.hint = "list_jobs shows the ids of known jobs"


class JobExists(JobStoreError):
    """A job with this id already exists."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"a job with id {job_id!r} already exists")


class JobStillActive(JobStoreError):
    """Only jobs in a final state can be deleted."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(f"job {job_id!r} is {status.value}: only finished jobs can be deleted")
        self.hint = "abort the job first"


class StaleSession(JobStoreError):
    """A write came from an older service session than the one that now owns the store.

    High availability fences the old hot server this way: once a newer session id (SSID) is
    recorded in the store, every write carrying an older one is refused and changes nothing.
    """

    def __init__(self, ssid: int, current: int) -> None:
        self.ssid = ssid
        self.current = current
        super().__init__(
            f"service session {ssid} is stale: the job store now belongs to session {current}; "
            "write refused"
        )
        self.hint = "this server is no longer the hot server: stop it (the new one resumes jobs)"


class StoreCorrupt(JobStoreError):
    """The store's database or a job's files cannot be read."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = path
        super().__init__(f"job store {path} is unreadable: {detail}")
        self.hint = "move the file aside to start an empty store, or restore it from a backup"


class StatusConflict(InvalidTransition):
    """A compare-and-set transition lost: the job is no longer in the expected status."""

    def __init__(self, job_id: str, current: JobStatus, expected: JobStatus, new: JobStatus):
        super().__init__(current, new)
        self.job_id = job_id
        self.expected = expected
        self.args = (
            f"job {job_id!r} is {current.value}, not {expected.value}: "
            f"transition to {new.value} refused",
        )
