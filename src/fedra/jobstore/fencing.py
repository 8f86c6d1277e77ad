"""Fencing by service session id (SSID): only the newest session may write to a shared store.

High availability runs one hot server at a time. Each time a server becomes hot it gets a new
SSID, a positive integer larger than every earlier one (the overseer hands it out, or the
server takes one with :meth:`~fedra.jobstore.JobStore.new_ssid`). Every store records the largest
SSID it has seen. A write that carries an SSID:

- older than the recorded one is refused with :class:`~fedra.jobstore.StaleSession` and changes
  nothing: the old hot server is fenced off, even if it still believes it is hot;
- equal to it goes through;
- newer than it records the new SSID first, in the same transaction: the new session takes the
  store over by writing (or by :meth:`~fedra.jobstore.JobStore.claim_ssid` before any write).

The check and the write are one atomic step in every backend, so no write of an old session can
land after a newer session has claimed the store. Writes without an SSID are not fenced (a
single server, admin tools); reads are never fenced. :class:`FencedJobStore` is the view a hot
server writes through: it adds its SSID to every write.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from fedra.core import JobStatus, JsonCompatible
from fedra.jobstore.errors import StaleSession
from fedra.jobstore.protocol import JobStore
from fedra.jobstore.record import JobRecord

#: The largest SSID a store can keep (a signed 64-bit integer, as SQL databases store it).
MAX_SSID = 2**63 - 1


def check_ssid(ssid: object) -> int:
    """Return ``ssid`` if it is a valid session id (an int from 1 to 2**63-1), else ValueError."""
    if isinstance(ssid, bool) or not isinstance(ssid, int) or not 1 <= ssid <= MAX_SSID:
        raise ValueError(f"invalid service session id {ssid!r}: expected an integer >= 1")
    return ssid


def fence(current: int, ssid: int | None) -> int:
    """The SSID a store records after a write carrying ``ssid`` (StaleSession if too old)."""
    if ssid is None:
        return current
    if check_ssid(ssid) < current:
        raise StaleSession(ssid, current)
    return ssid


class FencedJobStore:
    """A view of ``store`` whose every write carries the session id ``ssid``.

    Reads go straight to the store. Writes are refused with
    :class:`~fedra.jobstore.StaleSession` once the store has seen a newer session. Closing the view
    closes the store.
    """

    def __init__(self, store: JobStore, ssid: int) -> None:
        self.store = store
        self.ssid = check_ssid(ssid)

    def __enter__(self) -> FencedJobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FencedJobStore({self.store!r}, ssid={self.ssid})"

    def check(self) -> None:
        """Raise :class:`~fedra.jobstore.StaleSession` if a newer session owns the store now."""
        fence(self.store.current_ssid(), self.ssid)

    def create(
        self,
        meta_json: Mapping[str, JsonCompatible],
        job_zip: bytes,
        submitter: str,
        job_id: str | None = None,
        *,
        ssid: int | None = None,
    ) -> JobRecord:
        """Store a new SUBMITTED job, as this view's session."""
        return self.store.create(meta_json, job_zip, submitter, job_id, ssid=self._ssid(ssid))

    def get(self, job_id: str) -> JobRecord:
        """The job's record."""
        return self.store.get(job_id)

    def list(
        self, prefix: str | None = None, statuses: set[JobStatus] | None = None
    ) -> builtins.list[JobRecord]:
        """Jobs with an id starting with ``prefix`` and a status in ``statuses``, oldest first."""
        return self.store.list(prefix, statuses)

    def transition(
        self,
        job_id: str,
        new: JobStatus,
        reason: str,
        *,
        expected: JobStatus | None = None,
        ssid: int | None = None,
    ) -> JobRecord:
        """Move the job to ``new``, as this view's session."""
        return self.store.transition(job_id, new, reason, expected=expected, ssid=self._ssid(ssid))

    def set_failure(
        self, job_id: str, failure: Mapping[str, JsonCompatible], *, ssid: int | None = None
    ) -> JobRecord:
        """Record why the job failed, as this view's session."""
        return self.store.set_failure(job_id, failure, ssid=self._ssid(ssid))

    def update_run_info(
        self, job_id: str, info: Mapping[str, JsonCompatible], *, ssid: int | None = None
    ) -> JobRecord:
        """Merge ``info`` into the job's run info, as this view's session."""
        return self.store.update_run_info(job_id, info, ssid=self._ssid(ssid))

    def job_zip(self, job_id: str) -> bytes:
        """The zip the job was submitted as."""
        return self.store.job_zip(job_id)

    def workspace(self, job_id: str) -> Path:
        """The job's run folder, created if needed."""
        return self.store.workspace(job_id)

    def delete(self, job_id: str, *, ssid: int | None = None) -> None:
        """Delete a finished job and its files, as this view's session."""
        self.store.delete(job_id, ssid=self._ssid(ssid))

    def current_ssid(self) -> int:
        """The newest session id the store has seen (0: none yet)."""
        return self.store.current_ssid()

    def claim_ssid(self, ssid: int) -> None:
        """Record ``ssid`` as the store's session (StaleSession if a newer one owns it)."""
        self.store.claim_ssid(ssid)

    def new_ssid(self) -> int:
        """Take the next session id and record it: the store belongs to it from now on."""
        return self.store.new_ssid()

    def fenced(self, ssid: int) -> FencedJobStore:
        """A view of the same store writing as session ``ssid``."""
        return FencedJobStore(self.store, ssid)

    def close(self) -> None:
        """Close the store behind the view."""
        self.store.close()

    def _ssid(self, ssid: int | None) -> int:
        if ssid is not None and ssid != self.ssid:
            raise ValueError(f"this view writes as session {self.ssid}, not {ssid}")
        return self.ssid
