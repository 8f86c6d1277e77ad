"""What the server parent takes from sites for its running jobs: results, logs, upload
requests and job states, each checked before it reaches a job process.

* **Results** answer a task the server sent to that site and that is still outstanding, and
  fit the task's model (:mod:`fedra.server.resultspec`). A big result is checked from its
  header at the FL port's receive gate, before its body is received; a small one when it has
  arrived. A refused result costs one log line (site, job, task, why); the site is told
  (``result_refused``) and the job gives that task up, so the round goes on with the others.
* **Upload requests** (``may_upload``) wait for their job's results slot in one thread each,
  and at most one waits per (site, job): a repeated request is refused and logged, so a flood
  cannot start threads.
* **Job states**: a site that refuses or fails a job is recorded in the job (its failure and
  ``site_refusals`` in the run info), and a job whose sites refused it does not end
  FINISHED:COMPLETED (see :meth:`Intake.final_status`).
* Every message is parsed with :mod:`fedra.runtime.messages`; a malformed one is refused with
  a log line naming the site.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedra.core import JobStatus
from fedra.runtime import protocol as p
from fedra.runtime.messages import BadMessage, JobState, LogHeaders, MayUpload, ResultHeaders
from fedra.server.resultspec import Expectation, heads_of
from fedra.transport import MessageRefused
from fedra.wire import ALIGN, Envelope, FrameHead, TensorHead

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent
    from fedra.runtime.server_records import RunningJob, SiteHandle

log = logging.getLogger("fedra.server")
#: Longest wait, when a job ends, for its sites to say whether they run it.
REPORT_WAIT_S = 30.0
#: Seconds a site has, once granted an upload, to begin sending that result.
GRANT_START_S = 60.0
GRANT_POLL_S = 0.5


@dataclass
class _Task:
    site: str
    expected: Expectation
    #: Its result passed the receive gate and is being received.
    admitted: bool = False


@dataclass
class _JobBook:
    """One running job's outstanding tasks and what its sites said about it."""

    tasks: dict[str, _Task] = field(default_factory=dict)
    #: Sites that started the job's process.
    started: set[str] = field(default_factory=set)
    #: Sites that refused the job or failed to start it (site -> why), before starting it.
    refused: dict[str, str] = field(default_factory=dict)


class ResultLedger:
    """The tasks sent to sites and not yet answered, per job, with what may answer them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, _JobBook] = {}

    def book(self, job_id: str) -> _JobBook:
        """The job's book (created on first use)."""
        with self._lock:
            return self._jobs.setdefault(job_id, _JobBook())

    def expect(self, job_id: str, site: str, task_id: str, expected: Expectation) -> None:
        """A task went (or goes) out to ``site``."""
        book = self.book(job_id)
        with self._lock:
            book.tasks[task_id] = _Task(site, expected)

    def has_task(self, job_id: str, site: str) -> bool:
        """Whether a task of ``site`` in ``job_id`` waits for its result."""
        with self._lock:
            book = self._jobs.get(job_id)
            return book is not None and any(t.site == site for t in book.tasks.values())

    def forget_task(self, job_id: str, task_id: str) -> None:
        """The task will not be answered (its site could not be reached)."""
        with self._lock:
            book = self._jobs.get(job_id)
            if book is not None:
                book.tasks.pop(task_id, None)

    def forget_job(self, job_id: str) -> _JobBook | None:
        """The job ended: drop its book (returned)."""
        with self._lock:
            return self._jobs.pop(job_id, None)

    def admit(
        self, job_id: str, site: str, task_id: str, tensors: tuple[TensorHead, ...] | None
    ) -> str | None:
        """A result's header at the receive gate: why it is refused, or None (then it is
        marked as being received: a second result for the task is refused)."""
        with self._lock:
            task, missing = self._find(job_id, site, task_id)
            if task is None:
                return missing
            if task.admitted:
                return f"a result for task {task_id[:64]!r} is being received already"
            why = task.expected.check(tensors)
            if why is None:
                task.admitted = True
            else:
                self._drop(job_id, task_id)
            return why

    def settle(
        self, job_id: str, site: str, task_id: str, tensors: tuple[TensorHead, ...] | None
    ) -> str | None:
        """A result has arrived: why it is refused, or None. Either way it is no longer
        outstanding."""
        with self._lock:
            task, why = self._find(job_id, site, task_id)
            if task is None:
                return why
            self._drop(job_id, task_id)
            return None if task.admitted else task.expected.check(tensors)

    def spend(self, job_id: str, site: str, task_id: str) -> None:
        """The task of ``site`` is answered by a refused result: no longer outstanding."""
        with self._lock:
            task, _ = self._find(job_id, site, task_id)
            if task is not None:
                self._drop(job_id, task_id)

    def _find(self, job_id: str, site: str, task_id: str) -> tuple[_Task | None, str]:
        book = self._jobs.get(job_id)
        if book is None:
            return None, f"job {job_id[:64]!r} is not running here"
        task = book.tasks.get(task_id)
        if task is None or task.site != site:
            return None, f"task {task_id[:64]!r} of job {job_id} is not outstanding for {site}"
        return task, ""

    def _drop(self, job_id: str, task_id: str) -> None:
        book = self._jobs.get(job_id)
        if book is not None:
            book.tasks.pop(task_id, None)


class Intake:
    """The server parent's handling of the job messages of its sites (see the module)."""

    def __init__(self, server: ServerParent) -> None:
        self._server = server
        self.ledger = ResultLedger()
        self._lock = threading.Lock()
        self._reported = threading.Condition(self._lock)
        #: (site, job id) of each upload request waiting for its job's results slot.
        self._waiting: set[tuple[str, str]] = set()
        #: Repeated upload requests refused, per (site, job id).
        self._duplicates: dict[tuple[str, str], int] = {}
        #: Grants whose result has begun to arrive.
        self._sending: set[str] = set()
        self._idle = threading.Event()  # never set: a wait that is not a sleep

    # -- tasks going out ------------------------------------------------------------------
    def task_sent(self, job_id: str, env: Envelope) -> None:
        """Record the tasks of a TASK message the job process sends (one site or many)."""
        h = env.headers
        expected = Expectation.of_task(env.model)
        targets = h.get("targets")
        if isinstance(targets, list):
            for target in targets:
                if isinstance(target, dict):
                    site, task_id = target.get("site"), target.get("task_id")
                    self.ledger.expect(job_id, str(site), str(task_id), expected)
        else:
            self.ledger.expect(job_id, str(h.get("site")), str(h.get("task_id")), expected)

    # -- results --------------------------------------------------------------------------
    def gate(self, site: str, head: FrameHead, total: int = 0, head_bytes: int = 0) -> None:
        """At the receive gate, a big message's header: MessageRefused for a result that does
        not answer an outstanding task of ``site`` or does not fit the task's model, or whose
        size (``total``, with ``head_bytes`` of head) is more than its header declares. Only
        results may be big: any other message of a site that reaches the gate is refused."""
        if head.kind != p.RESULT:
            big = f"a {head.kind[:32]!r} message of {total} bytes: only results may be this big"
            log.warning("refused a message from site %s: %s", site, big)
            raise MessageRefused(big)
        try:
            result = ResultHeaders.from_headers(head.headers)
        except BadMessage as exc:
            self._refuse(site, None, str(exc))
            raise MessageRefused(str(exc)) from None
        tensors = head.tensors or ()
        declared = head_bytes + sum(t.nbytes for t in tensors) + ALIGN * (len(tensors) + 1)
        why: str | None
        if head_bytes and total > declared:
            why = f"it announces {total} bytes, its header declares {declared - ALIGN} at most"
            self.ledger.spend(result.job_id, site, result.task_id)
        else:
            why = self.ledger.admit(result.job_id, site, result.task_id, head.tensors)
        if why is None and result.grant is not None:
            with self._lock:
                self._sending.add(result.grant)  # its grant is in use now (see _withdraw_unused)
        if why is not None:
            handle = self._server.sites.get(site)
            if handle is not None and result.grant is not None:
                self._server._end_grant(handle, result.grant)  # its slot is free again
            self._refuse(site, result, why)
            raise MessageRefused(why)

    def result(self, handle: SiteHandle, env: Envelope) -> None:
        """A result has arrived from ``handle``: checked, then passed to its job."""
        result = ResultHeaders.from_headers(env.headers)
        model = env.model if result.error is None else None
        why = self.ledger.settle(result.job_id, handle.name, result.task_id, heads_of(model))
        if why is not None:
            self._refuse(handle.name, result, why)
            return
        job = self._server.running.get(result.job_id)
        if job is not None:
            headers = {**env.headers, "site": handle.name}
            self._server._to_job(job, Envelope(p.RESULT, headers, model))

    def _refuse(self, site: str, result: ResultHeaders | None, why: str) -> None:
        """One log line; the site hears why; the job gives the task up."""
        if result is None:
            log.warning("refused a result from site %s: malformed headers: %s", site, why)
            return
        log.warning(
            "refused the result of site %s for task %s of job %s: %s",
            site,
            result.task_id[:64],
            result.job_id[:64],
            why,
        )
        job = self._server.running.get(result.job_id)
        if job is not None and site in job.sites:
            self._server._to_job(job, Envelope("lost", {"task_id": result.task_id}))
            handle = self._server.sites.get(site)
            if handle is not None and not self.ledger.has_task(job.job_id, site):
                for grant_id, slot in list(handle.grants.items()):
                    if slot is job.results_gate:  # nothing left to upload: its slot is free
                        self._server._end_grant(handle, grant_id)
        refused = {"job_id": result.job_id, "task_id": result.task_id, "error": why}
        self._server.send_to_site(site, Envelope(p.RESULT_REFUSED, refused))

    # -- logs -----------------------------------------------------------------------------
    def log_entry(self, handle: SiteHandle, env: Envelope) -> None:
        """A metric from a site's training code, passed to its job when it is one of the
        job's sites."""
        entry = LogHeaders.from_headers(env.headers)
        job = self._server.running.get(entry.job_id)
        if job is None or handle.name not in job.sites:
            return
        headers = {
            "job_id": entry.job_id,
            "site": handle.name,
            "key": entry.key,
            "value": entry.value,
            "step": entry.step,
        }
        self._server._to_job(job, Envelope(p.LOG, headers))

    # -- upload requests ------------------------------------------------------------------
    def may_upload(self, handle: SiteHandle, env: Envelope) -> None:
        """Start one grant thread, unless this site already waits for (or holds) a grant of
        that job: then the request is refused and logged."""
        ask = MayUpload.from_headers(env.headers)
        job = self._server.running.get(ask.job_id)
        if job is None or handle.name not in job.sites:
            log.warning(
                "refused an upload request of site %s: job %s is not one of its running jobs",
                handle.name,
                ask.job_id[:64],
            )
            return
        if not self.ledger.has_task(ask.job_id, handle.name):
            log.warning(
                "refused an upload request of site %s for job %s: no task of it is outstanding",
                handle.name,
                ask.job_id,
            )
            return
        key = (handle.name, ask.job_id)
        with self._lock:
            duplicate = key in self._waiting or job.results_gate in handle.grants.values()
            if not duplicate:
                self._waiting.add(key)
        if duplicate:
            with self._lock:
                count = self._duplicates[key] = self._duplicates.get(key, 0) + 1
            if _worth_a_line(count):  # a flood gets a few lines, not one per message
                log.warning(
                    "refused an upload request of site %s for job %s: it already has one "
                    "(%d refused so far)",
                    handle.name,
                    ask.job_id,
                    count,
                )
            return
        threading.Thread(target=self._grant, args=(handle, job, ask.id, key), daemon=True).start()

    def _grant(
        self, handle: SiteHandle, job: RunningJob, grant_id: str, key: tuple[str, str]
    ) -> None:
        try:
            self._server._grant(handle, job, grant_id)
        finally:
            with self._lock:
                self._waiting.discard(key)
        self._withdraw_unused(handle, job, grant_id)

    def _withdraw_unused(self, handle: SiteHandle, job: RunningJob, grant_id: str) -> None:
        """Withdraw a grant whose result has not begun within GRANT_START_S: a site that
        holds its job's results slot and sends nothing would stall the others' big results."""
        deadline = time.monotonic() + GRANT_START_S
        try:
            while grant_id in handle.grants and grant_id not in self._sending:
                if handle.conn.closed or job.done:
                    return
                if time.monotonic() > deadline:
                    log.warning(
                        "site %s sent nothing within %.0f s of its upload grant for job %s: "
                        "grant withdrawn",
                        handle.name,
                        GRANT_START_S,
                        job.job_id,
                    )
                    self._server._end_grant(handle, grant_id)
                    return
                self._idle.wait(GRANT_POLL_S)
        finally:
            with self._lock:
                self._sending.discard(grant_id)

    def waiting_grants(self) -> int:
        """How many upload requests wait for their job's slot now."""
        with self._lock:
            return len(self._waiting)

    # -- job states -----------------------------------------------------------------------
    def job_state(self, handle: SiteHandle, env: Envelope) -> JobState | None:
        """Record what a site says about a job; the parsed state for a job running here."""
        state = JobState.from_headers(env.headers)
        log.info("site %s: job %s %s %s", handle.name, state.job_id, state.state, state.detail)
        job = self._server.running.get(state.job_id)
        if job is None or handle.name not in job.sites:
            return None
        book = self.ledger.book(state.job_id)
        refused = False
        with self._lock:
            if state.state == "started":
                book.started.add(handle.name)
                book.refused.pop(handle.name, None)
            elif state.state == "failed" and handle.name not in book.started:
                book.refused[handle.name] = state.detail  # never ran it: a refusal
                refused = True
            self._reported.notify_all()
        if refused:
            self._server.store.update_run_info(
                state.job_id, {"site_refusals": dict(sorted(book.refused.items()))}
            )
        return state

    def final_status(
        self, job: RunningJob, min_clients: int, status: JobStatus, reason: str
    ) -> tuple[JobStatus, str, dict[str, str]]:
        """How a job that ends ``status`` is recorded, given what its sites said: a job that
        fewer than ``min_clients`` sites ran (every other one refused or failed it) ends
        FINISHED:EXECUTION_EXCEPTION, never COMPLETED. Returns (status, reason, refusals).

        A job that would complete first waits (up to ``REPORT_WAIT_S``) until each of its
        connected sites has said whether it runs the job: a workflow that sends no task can
        end before the sites have answered."""
        book = self.ledger.book(job.job_id)
        if status == JobStatus.FINISHED_COMPLETED:
            deadline = time.monotonic() + REPORT_WAIT_S
            with self._lock:
                while not self._all_reported(job, book):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._reported.wait(min(left, 0.5))
        self.ledger.forget_job(job.job_id)
        with self._lock:
            for key in [k for k in self._duplicates if k[1] == job.job_id]:
                del self._duplicates[key]
        refused = dict(sorted(book.refused.items()))
        if status != JobStatus.FINISHED_COMPLETED or not refused:
            return status, reason, refused
        ran = [s for s in job.sites if s not in refused]
        # A job whose sites refused it did not complete: RUNNING -> FINISHED:EXECUTION_EXCEPTION
        # (FAILED_TO_RUN is only reachable before RUNNING, see fedra.core.status).
        if len(ran) >= max(min_clients, 1):
            return status, reason, refused
        why = "; ".join(f"{site}: {_first_line(detail)}" for site, detail in refused.items())
        return (
            JobStatus.FINISHED_EXECUTION_EXCEPTION,
            f"{len(refused)} of {len(job.sites)} sites refused or failed the job "
            f"({len(ran)} ran it, min_clients={min_clients}): {why}",
            refused,
        )

    def _all_reported(self, job: RunningJob, book: _JobBook) -> bool:
        connected = self._server.sites
        return all(s in book.started or s in book.refused or s not in connected for s in job.sites)


def _worth_a_line(count: int) -> bool:
    """Log the 1st, 10th, 100th ... of a run of refusals."""
    return count == 1 or (count % 10 == 0 and _worth_a_line(count // 10))


def _first_line(detail: str) -> str:
    lines = [line for line in detail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "failed"
