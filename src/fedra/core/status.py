"""The job lifecycle: states, the table of legal transitions, and a recorded history.

Every transition goes through :func:`transition`, which refuses anything the table does not
list; in particular a finished job (aborted included) can never be started again.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class JobStatus(enum.StrEnum):
    """The states of a job."""

    SUBMITTED = "SUBMITTED"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    FINISHED_COMPLETED = "FINISHED:COMPLETED"
    FINISHED_ABORTED = "FINISHED:ABORTED"
    FINISHED_EXECUTION_EXCEPTION = "FINISHED:EXECUTION_EXCEPTION"
    FAILED_TO_RUN = "FAILED_TO_RUN"

    @property
    def is_final(self) -> bool:
        """True for states with no way out."""
        return not TRANSITIONS[self]


TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.SUBMITTED: frozenset(
        {JobStatus.DISPATCHED, JobStatus.FINISHED_ABORTED, JobStatus.FAILED_TO_RUN}
    ),
    JobStatus.DISPATCHED: frozenset(
        {JobStatus.RUNNING, JobStatus.FINISHED_ABORTED, JobStatus.FAILED_TO_RUN}
    ),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.FINISHED_COMPLETED,
            JobStatus.FINISHED_ABORTED,
            JobStatus.FINISHED_EXECUTION_EXCEPTION,
        }
    ),
    JobStatus.FINISHED_COMPLETED: frozenset(),
    JobStatus.FINISHED_ABORTED: frozenset(),
    JobStatus.FINISHED_EXECUTION_EXCEPTION: frozenset(),
    JobStatus.FAILED_TO_RUN: frozenset(),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    """Whether the table allows ``current -> new``."""
    return new in TRANSITIONS[current]


def transition(current: JobStatus, new: JobStatus) -> JobStatus:
    """Return ``new`` if the table allows ``current -> new``; raise InvalidTransition otherwise."""
    from fedra.core.errors import InvalidTransition

    if not can_transition(current, new):
        raise InvalidTransition(current, new)
    return new


@dataclass(frozen=True)
class StatusChange:
    """One recorded transition."""

    status: JobStatus
    at: float
    reason: str


@dataclass
class JobLifecycle:
    """A job's current status plus the history of every transition, with time and reason."""

    status: JobStatus = JobStatus.SUBMITTED
    history: list[StatusChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append(StatusChange(self.status, time.time(), "submitted"))

    def move(self, new: JobStatus, reason: str) -> None:
        """Apply a transition (refused by the table if illegal) and record it."""
        self.status = transition(self.status, new)
        self.history.append(StatusChange(new, time.time(), reason))

    def as_dicts(self) -> list[dict[str, object]]:
        """The history as JSON-compatible dicts."""
        return [{"status": c.status.value, "at": c.at, "reason": c.reason} for c in self.history]
