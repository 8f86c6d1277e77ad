"""The server parent's upload slots: one big result of a job comes in at a time.

A site with a big result asks first (MayUpload); the server answers UploadOk once the job's
results slot is free, and the slot stays held until that result has been passed on to the
job (or the site leaves, or sends nothing within GRANT_START_S). A big result that comes
without a live grant waits at the FL port's receive gate for its job's slot, or, when it
names no running job, for the one stray slot. Every slot, grant and waiting request is kept
here, under one lock (:attr:`UploadSlots._lock` guards every field).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("fedra.server")


@dataclass(frozen=True)
class Grant:
    """An upload grant a site holds: its job's results slot is held for it."""

    site: str
    job_id: str


class UploadSlots:
    """The results slot of each running job, the stray slot, and the grants that hold them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Job id -> its results slot (one big result of the job received at a time).
        self._slots: dict[str, threading.Semaphore] = {}
        #: Big results that name no running job wait for this one slot.
        self._stray = threading.Semaphore(1)
        #: Grant id -> the grant; each holds its job's slot.
        self._grants: dict[str, Grant] = {}
        #: (site, job id) of each upload request waiting for its job's slot.
        self._waiting: set[tuple[str, str]] = set()
        #: Grants whose result has begun to arrive.
        self._sending: set[str] = set()
        #: Repeated upload requests refused, per (site, job id).
        self._duplicates: dict[tuple[str, str], int] = {}

    # -- jobs -----------------------------------------------------------------------------
    def open_job(self, job_id: str) -> None:
        """A job runs: it gets its results slot."""
        with self._lock:
            self._slots.setdefault(job_id, threading.Semaphore(1))

    def close_job(self, job_id: str) -> None:
        """A job ended: its grants are given back; requests still waiting give up."""
        with self._lock:
            for grant_id in [g for g, grant in self._grants.items() if grant.job_id == job_id]:
                self._end_locked(grant_id)
            self._slots.pop(job_id, None)
            for key in [k for k in self._duplicates if k[1] == job_id]:
                del self._duplicates[key]

    # -- the receive gate -----------------------------------------------------------------
    def gate_slot(self, job_id: str | None, grant_id: str | None) -> threading.Semaphore | None:
        """The slot a big result waits for at the receive gate: none when it comes under a
        live grant (it holds its job's slot already), its job's slot, else the stray slot."""
        with self._lock:
            if grant_id is not None and grant_id in self._grants:
                return None
            slot = self._slots.get(job_id) if job_id is not None else None
            return slot if slot is not None else self._stray

    def sending(self, grant_id: str) -> None:
        """The result of a grant has begun to arrive (it is not withdrawn for silence)."""
        with self._lock:
            if grant_id in self._grants:
                self._sending.add(grant_id)

    # -- grants ---------------------------------------------------------------------------
    def request(self, site: str, job_id: str) -> int:
        """An upload request of ``site`` for ``job_id``: 0 when it may wait for the slot (it
        is then waiting), else how many repeated requests of that pair were refused so far
        (a site waits for, or holds, one grant of a job at most)."""
        key = (site, job_id)
        with self._lock:
            held = any(g == Grant(site, job_id) for g in self._grants.values())
            if key not in self._waiting and not held and job_id in self._slots:
                self._waiting.add(key)
                return 0
            count = self._duplicates[key] = self._duplicates.get(key, 0) + 1
            return count

    def wait_grant(
        self, site: str, job_id: str, grant_id: str, gone: Callable[[], bool], poll: float = 1.0
    ) -> bool:
        """Wait for the job's slot for a request :meth:`request` accepted; True when the
        grant now holds it, False when ``gone()`` (site left, job ended) came first."""
        try:
            while True:
                with self._lock:
                    slot = self._slots.get(job_id)
                if slot is None or gone():
                    return False
                if slot.acquire(timeout=poll):
                    break
            with self._lock:
                if self._slots.get(job_id) is not slot:  # the job ended meanwhile
                    slot.release()
                    return False
                self._grants[grant_id] = Grant(site, job_id)
            return True
        finally:
            with self._lock:
                self._waiting.discard((site, job_id))

    def live(self, grant_id: str) -> bool:
        """Whether the grant holds its slot and its result has not begun."""
        with self._lock:
            return grant_id in self._grants and grant_id not in self._sending

    def end(self, grant_id: str) -> None:
        """The grant's result has been passed on (or refused, or withdrawn): its slot is
        free. A second end is a no-op."""
        with self._lock:
            self._end_locked(grant_id)

    def end_site(self, site: str, job_id: str | None = None) -> None:
        """End every grant ``site`` holds (of ``job_id`` only, when given)."""
        with self._lock:
            for grant_id, grant in list(self._grants.items()):
                if grant.site == site and job_id in (None, grant.job_id):
                    self._end_locked(grant_id)

    def _end_locked(self, grant_id: str) -> None:
        grant = self._grants.pop(grant_id, None)
        self._sending.discard(grant_id)
        if grant is not None:
            slot = self._slots.get(grant.job_id)
            if slot is not None:
                slot.release()

    # -- what is held ---------------------------------------------------------------------
    def waiting(self) -> int:
        """How many upload requests wait for their job's slot now."""
        with self._lock:
            return len(self._waiting)

    def grants(self) -> dict[str, Grant]:
        """The grants held now."""
        with self._lock:
            return dict(self._grants)
