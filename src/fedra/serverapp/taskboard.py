"""The TaskBoard: the server's side of task dispatch, the same for every transport.

A workflow calls :meth:`TaskBoard.broadcast`; the board gives each task an id, hands it to
``deliver`` (the simulator's worker pool, or the connection to a site), and yields results as
sites :meth:`submit` them. Every result names its task id: a result for a task that is not
outstanding (unknown, expired, or already answered) is refused with a reason, so a duplicate
after a reconnect is counted once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from fedra.core import FLModel, RunAborted, Task, TaskResult, WorkflowError
from fedra.serverapp.resultspec import Expectation

Deliver = Callable[[Task], None]


@dataclass(frozen=True)
class Verdict:
    """The board's answer to a submitted result."""

    accepted: bool
    reason: str = ""


@dataclass(frozen=True)
class _Lost:
    """A task whose site went away: counts as answered, yields nothing."""

    site: str


class _Batch:
    def __init__(self) -> None:
        self.results: queue.SimpleQueue[TaskResult | _Lost | None] = queue.SimpleQueue()


class TaskBoard:
    """Implements the Fleet protocol on top of a ``deliver`` function."""

    def __init__(
        self,
        sites: Sequence[str],
        deliver: Deliver,
        job_id: str = "",
        consumed: Callable[[TaskResult], None] | None = None,
        deliver_many: Callable[[list[Task]], None] | None = None,
        check_results: bool = False,
    ) -> None:
        """``consumed`` is told when the workflow is done with a result it was given (or when
        an accepted result is dropped unread): the caller's back-pressure hook.
        ``check_results``: refuse a result whose params do not fit its task's model (see
        :mod:`fedra.serverapp.resultspec`); its task then counts as answered without a result."""
        self._sites = list(sites)
        self._deliver = deliver
        #: Optional: hand all tasks of one broadcast over at once (they share their data), so
        #: a transport can send the model once and fan it out.
        self._deliver_many = deliver_many
        self._consumed = consumed
        self._job_id = job_id
        self._check_results = check_results
        self._lock = threading.Lock()
        self._outstanding: dict[str, tuple[_Batch, str, Expectation | None]] = {}
        self._batches: set[_Batch] = set()
        self._abort_reason: str | None = None

    # -- the Fleet protocol -------------------------------------------------------------
    def sites(self) -> list[str]:
        """The sites of the run."""
        with self._lock:
            return list(self._sites)

    def aborted(self) -> bool:
        """True once :meth:`abort` was called."""
        return self._abort_reason is not None

    def broadcast(
        self,
        task_name: str,
        data: FLModel,
        targets: Sequence[str] | None = None,
        *,
        min_responses: int | None = None,
        wait_after_min: float = 0.0,
        timeout: float | None = None,
    ) -> Iterator[TaskResult]:
        """Send ``task_name`` to every target and yield results as they come."""
        chosen = list(self.sites() if targets is None else targets)
        with self._lock:
            known = set(self._sites)  # one look-up per target: O(N), not O(N^2), per round
        unknown = [t for t in chosen if t not in known]
        if unknown:
            raise WorkflowError(f"unknown sites {unknown}")
        needed = len(chosen) if min_responses is None else min(min_responses, len(chosen))
        return self._collect(task_name, data, chosen, needed, wait_after_min, timeout)

    def send(
        self, task_name: str, data: FLModel, target: str, *, timeout: float | None = None
    ) -> TaskResult:
        """Send one task to one site and wait for its answer."""
        for result in self.broadcast(task_name, data, [target], timeout=timeout):
            return result
        raise WorkflowError(f"site {target} did not answer task '{task_name}' within {timeout} s")

    # -- the site side ------------------------------------------------------------------
    def submit(self, result: TaskResult) -> Verdict:
        """Accept a site's result if its task is outstanding; refuse it otherwise."""
        with self._lock:
            entry = self._outstanding.get(result.task_id)
            if entry is None:
                return Verdict(False, f"task {result.task_id} is not outstanding")
            batch, site, expected = entry
            if site != result.site:
                return Verdict(
                    False, f"task {result.task_id} was sent to {site}, not {result.site}"
                )
            del self._outstanding[result.task_id]
            why = None if expected is None else expected.check_model(result.data)
            if why is not None:
                batch.results.put(_Lost(site))  # answered: the round need not wait for it
                return Verdict(False, f"result of {site} for task {result.task_id}: {why}")
            # Queued under the lock: once a batch is closed, every accepted result is queued.
            batch.results.put(result)
        return Verdict(True)

    def set_sites(self, sites: Sequence[str]) -> None:
        """Replace the list of sites taking part (sites joining or leaving the run)."""
        with self._lock:
            self._sites = list(sites)

    def cancel_site(self, site: str) -> int:
        """Give up on every outstanding task of ``site`` (it disconnected); returns how many.

        A waiting broadcast counts those tasks as answered without a result, so a round can
        complete with the remaining sites when ``min_responses`` allows it.
        """
        return self._cancel(lambda task_site, _task_id: task_site == site)

    def fail_site(self, site: str, detail: str) -> int:
        """Answer every outstanding task of ``site`` with an error (its job process died)."""
        with self._lock:
            doomed = [(tid, e) for tid, e in self._outstanding.items() if e[1] == site]
            for task_id, (batch, _site, _expected) in doomed:
                del self._outstanding[task_id]
                batch.results.put(TaskResult(task_id, "", site, error=detail))
        return len(doomed)

    def cancel_task(self, task_id: str) -> bool:
        """Give up on one task (its site cannot be reached)."""
        return self._cancel(lambda _site, tid: tid == task_id) > 0

    def _cancel(self, match: Callable[[str, str], bool]) -> int:
        with self._lock:
            doomed = [(tid, e) for tid, e in self._outstanding.items() if match(e[1], tid)]
            for task_id, (batch, site, _expected) in doomed:
                del self._outstanding[task_id]
                batch.results.put(_Lost(site))
        return len(doomed)

    def is_outstanding(self, task_id: str) -> bool:
        """Whether a task still waits for its result (a stale task need not be run)."""
        with self._lock:
            return task_id in self._outstanding

    def abort(self, reason: str = "aborted") -> None:
        """Stop the run: every waiting broadcast raises RunAborted."""
        with self._lock:
            self._abort_reason = reason
            batches = list(self._batches)
        for batch in batches:
            batch.results.put(None)

    # -- internals ----------------------------------------------------------------------
    def _collect(
        self,
        task_name: str,
        data: FLModel,
        targets: list[str],
        needed: int,
        wait_after_min: float,
        timeout: float | None,
    ) -> Iterator[TaskResult]:
        batch = _Batch()
        expected = Expectation.of_task(data) if self._check_results else None
        tasks = [
            Task(name=task_name, data=data, site=site, job_id=self._job_id, timeout=timeout)
            for site in targets
        ]
        with self._lock:
            if self._abort_reason is not None:
                raise RunAborted(self._abort_reason)
            self._batches.add(batch)
            for task in tasks:
                self._outstanding[task.id] = (batch, task.site, expected)
        handed: TaskResult | None = None  # yielded, not yet known to be consumed
        try:
            if self._deliver_many is not None and len(tasks) > 1:
                self._deliver_many(tasks)
            else:
                for task in tasks:
                    self._deliver(task)
            now = time.monotonic()
            deadline = None if timeout is None else now + timeout
            received = 0  # real results
            answered = 0  # real results and tasks given up on
            closed = False
            while answered < len(targets):
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0 and not closed:
                    # Refuse later results, but still hand over those already accepted.
                    self._close(tasks)
                    closed = True
                try:
                    if closed:
                        result = batch.results.get_nowait()
                    else:
                        result = batch.results.get(timeout=wait)
                except queue.Empty:
                    if closed:
                        return
                    continue
                if result is None:
                    raise RunAborted(self._abort_reason or "aborted")
                answered += 1
                if isinstance(result, _Lost):
                    continue
                received += 1
                if received == needed and received < len(targets):
                    after_min = time.monotonic() + wait_after_min
                    deadline = after_min if deadline is None else min(deadline, after_min)
                handed = result
                yield result
                handed = None
                if self._consumed is not None:
                    self._consumed(result)
                # Hold no reference while waiting for the next one: server memory stays at
                # one result in flight, not two.
                del result
        finally:
            with self._lock:
                self._batches.discard(batch)
            self._close(tasks)
            self._release_unread(batch, handed)

    def _release_unread(self, batch: _Batch, handed: TaskResult | None) -> None:
        """Tell ``consumed`` about results the workflow will never read."""
        if self._consumed is None:
            return
        if handed is not None:
            self._consumed(handed)
        while True:
            try:
                leftover = batch.results.get_nowait()
            except queue.Empty:
                return
            if isinstance(leftover, TaskResult):
                self._consumed(leftover)

    def _close(self, tasks: list[Task]) -> None:
        """Stop accepting results for ``tasks``."""
        with self._lock:
            for task in tasks:
                self._outstanding.pop(task.id, None)
