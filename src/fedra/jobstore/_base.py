"""What every job store backend shares: argument checks, the transition rules, the fenced view.

:class:`StoreBase` is the half of :class:`~fedra.jobstore.JobStore` that is the same in every
backend. ``create``, ``set_failure`` and ``update_run_info`` check their arguments here, before
any lock is taken, and hand the checked values to the backend (``_insert``, ``_set_failure``,
``_update_run_info``); ``claim_ssid`` is a fenced write that changes nothing else. What really
differs stays in each backend: how a write is made atomic and fenced (``_write``) and where the
records are kept. :func:`check_move` and :func:`check_deletable` are the rules every backend
applies inside its write, to the status it has just read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from fedra.core import JobMeta, JobStatus, JsonCompatible, JsonObject, parse_meta, transition
from fedra.jobstore.errors import JobStillActive, StatusConflict
from fedra.jobstore.fencing import FencedJobStore, check_ssid
from fedra.jobstore.protocol import JobStore
from fedra.jobstore.record import JobRecord, check_job_id, copy_json, json_text, new_job_id


@dataclass(frozen=True)
class NewJob:
    """A job to store, its arguments checked: what a backend's ``_insert`` writes."""

    job_id: str
    meta: JobMeta
    #: ``meta.json`` as JSON text (sorted keys), as the SQL backends store it.
    meta_text: str
    job_zip: bytes
    submitter: str

    @property
    def reason(self) -> str:
        """The reason recorded with the first status, SUBMITTED."""
        return f"submitted by {self.submitter}"


def check_move(job_id: str, current: JobStatus, new: JobStatus, expected: JobStatus | None) -> None:
    """Refuse moving ``job_id`` from ``current`` to ``new`` unless the table and ``expected`` allow.

    :class:`~fedra.jobstore.StatusConflict` when ``expected`` is given and is not ``current`` (the
    compare-and-set lost), :class:`~fedra.core.InvalidTransition` when the table refuses.
    """
    if expected is not None and current != expected:
        raise StatusConflict(job_id, current, expected, new)
    transition(current, new)


def check_deletable(job_id: str, status: JobStatus) -> None:
    """Refuse deleting a job not in a final status (:class:`~fedra.jobstore.JobStillActive`)."""
    if not status.is_final:
        raise JobStillActive(job_id, status)


class StoreBase(ABC):
    """The public methods every backend shares; a backend adds how it keeps and locks records.

    A subclass implements the rest of :class:`~fedra.jobstore.JobStore` itself (reads,
    ``transition``, ``delete``, the session ids) and the hooks below.
    """

    def __enter__(self) -> Self:
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
        meta_json: Mapping[str, JsonCompatible],
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
        return self._insert(NewJob(job_id, meta, meta_text, bytes(job_zip), submitter), ssid)

    def set_failure(
        self, job_id: str, failure: Mapping[str, JsonCompatible], *, ssid: int | None = None
    ) -> JobRecord:
        """Record why the job failed, replacing any earlier failure."""
        return self._set_failure(job_id, copy_json(failure, f"failure of job {job_id!r}"), ssid)

    def update_run_info(
        self, job_id: str, info: Mapping[str, JsonCompatible], *, ssid: int | None = None
    ) -> JobRecord:
        """Merge ``info`` into the job's run info (nested objects merged key by key)."""
        return self._update_run_info(job_id, copy_json(info, f"run info of job {job_id!r}"), ssid)

    def claim_ssid(self, ssid: int) -> None:
        """Record ``ssid`` as the store's session; StaleSession if a newer one owns it."""
        with self._write(check_ssid(ssid)):
            pass

    def fenced(self: JobStore, ssid: int) -> FencedJobStore:
        """A view of this store that writes as session ``ssid``."""
        return FencedJobStore(self, ssid)

    # -- what each backend provides ----------------------------------------------------------

    @abstractmethod
    def _write(self, ssid: int | None = None) -> AbstractContextManager[Any]:
        """One atomic write: ``ssid`` fenced first, recorded only if the write succeeds."""

    @abstractmethod
    def _insert(self, job: NewJob, ssid: int | None) -> JobRecord:
        """Store ``job`` as SUBMITTED (:class:`~fedra.jobstore.JobExists` if its id is taken)."""

    @abstractmethod
    def _set_failure(self, job_id: str, failure: JsonObject, ssid: int | None) -> JobRecord:
        """Replace the job's failure with ``failure`` (a checked copy)."""

    @abstractmethod
    def _update_run_info(self, job_id: str, update: JsonObject, ssid: int | None) -> JobRecord:
        """Merge ``update`` (a checked copy) into the job's run info."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources; later calls raise JobStoreError."""
