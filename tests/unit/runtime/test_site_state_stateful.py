"""The site's state machine under random interleavings of what can happen to a site.

A simulated shell carries out the machine's actions the way SiteParent does (checking and
starting a job at once, as its reader thread does), keeps simulated job processes, and
checks after every step: every task gets exactly one answer (a result or an error result,
or the end of its job when the job ended with the task still in its process's hands),
nothing is sent to a job process after it was ended, every job whose run is over holds no
resources, and no process outlives its run.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fedra.protocol import (
    UPLOAD_ASK_BYTES,
    AbortJob,
    EndJob,
    MayUpload,
    Result,
    StartJob,
    Task,
    UploadOk,
    zip_model,
)
from fedra.runtime.site_events import (
    Action,
    CheckJob,
    Connected,
    Disconnected,
    EndProcess,
    Event,
    FreeResources,
    FromServer,
    JobChecked,
    JobExited,
    JobReady,
    JobResult,
    JobSendFailed,
    JobStartFailed,
    SendToJob,
    SendToServer,
    Shutdown,
    StartProcess,
    Tick,
)
from fedra.runtime.site_state import GRANT_WAIT_S, JobPhase, SiteJobRecord, SiteState

SITE = "site-a"
JOBS = st.sampled_from(["j1", "j2", "j3"])
CHECKS = st.sampled_from(["ok", "ok", "refused", "error"])


@dataclass
class Process:
    """A simulated site job process of one run."""

    job_id: str
    run: int
    inbox: list[str]  # task ids handed over, not answered yet
    ended: bool = False  # told to end (or crashed): receives nothing more
    exited: bool = False


class SiteMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = SiteState(SITE)
        self.ids = itertools.count()
        self.now = 0.0
        self.answers: Counter[str] = Counter()  # task id -> results sent to the server
        self.tasks: dict[str, str] = {}  # task id -> its job
        self.procs: dict[int, Process] = {}  # run -> process
        self.held_resources: set[str] = set()
        self.grants: list[str] = []
        self.records: dict[int, SiteJobRecord] = {}  # every run seen
        self.next_start: tuple[str, str] = ("ok", "ready")

    # -- the simulated shell --------------------------------------------------------------
    def feed(self, event: Event) -> None:
        for action in self.state.handle(event):
            self.do(action)
        for record in self.state.jobs.values():
            self.records[record.run] = record

    def do(self, action: Action) -> None:
        if isinstance(action, SendToServer):
            message = action.message
            if isinstance(message, Result):
                self.answers[message.task_id] += 1
            elif isinstance(message, MayUpload):
                self.grants.append(message.id)
        elif isinstance(action, SendToJob):
            proc = self.procs.get(action.run)
            assert proc is not None and not proc.ended, "sent to a process that ended"
            proc.inbox.append(action.task.task_id)
        elif isinstance(action, CheckJob):
            check = self.next_start[0]
            refusal = "policy" if check == "refused" else None
            error = "bad zip" if check == "error" else None
            self.feed(JobChecked(action.job_id, action.run, refusal, error))
        elif isinstance(action, StartProcess):
            self.held_resources.add(action.job_id)
            if self.next_start[1] == "ready":
                self.procs[action.run] = Process(action.job_id, action.run, [])
                self.feed(JobReady(action.job_id, action.run))
            else:
                self.feed(JobStartFailed(action.job_id, action.run, "no GPU"))
        elif isinstance(action, EndProcess):
            proc = self.procs.get(action.run)
            if proc is not None:
                proc.ended = True  # it exits later (reap)
        elif isinstance(action, FreeResources):
            self.held_resources.discard(action.job_id)

    def running(self, job_id: str) -> Process | None:
        record = self.state.jobs.get(job_id)
        proc = self.procs.get(record.run) if record is not None else None
        return proc if proc is not None and not proc.exited else None

    # -- rules ----------------------------------------------------------------------------
    @rule(job=JOBS, check=CHECKS, ready=st.booleans(), ours=st.booleans())
    def start_job(self, job: str, check: str, ready: bool, ours: bool) -> None:
        self.next_start = (check, "ready" if ready else "failed")
        sites = (SITE, "site-b") if ours else ("site-b",)
        before = self.state.phase(job)
        self.feed(FromServer(StartJob(job_id=job, sites=sites), zip_model(b"PK")))
        if not ours:
            assert self.state.phase(job) in (before, JobPhase.ENDED)
        elif check == "refused":
            assert self.state.phase(job) is JobPhase.REFUSED
        elif check == "error" or not ready:
            assert self.state.phase(job) is JobPhase.FAILED
        else:
            assert self.state.phase(job) is JobPhase.RUNNING

    @rule(job=JOBS)
    def task(self, job: str) -> None:
        task_id = f"t{next(self.ids)}"
        self.tasks[task_id] = job
        self.feed(FromServer(Task(job_id=job, task_id=task_id, task_name="train", site=SITE)))

    @rule(job=JOBS, big=st.booleans())
    def process_answers(self, job: str, big: bool) -> None:
        proc = self.running(job)
        if proc is None or not proc.inbox:
            return
        task_id = proc.inbox.pop(0)
        result = Result(job_id=job, task_id=task_id, task_name="train")
        size = UPLOAD_ASK_BYTES + 1 if big else 10
        grant = f"g{next(self.ids)}"
        self.feed(JobResult(job, proc.run, result, None, size, grant, self.now))

    @rule(job=JOBS)
    def process_loses_a_task(self, job: str) -> None:
        proc = self.running(job)
        if proc is not None and proc.inbox:
            task_id = proc.inbox.pop(0)
            task = Task(job_id=job, task_id=task_id, task_name="train", site=SITE)
            self.feed(JobSendFailed(job, proc.run, task))

    @rule(job=JOBS, abort=st.booleans())
    def end(self, job: str, abort: bool) -> None:
        self.feed(FromServer(AbortJob(job_id=job) if abort else EndJob(job_id=job)))
        phase = self.state.phase(job)
        assert phase is None or phase.is_final or phase is JobPhase.STOPPING
        if phase is None or phase.is_final:
            assert job not in self.held_resources

    @rule()
    def reap(self) -> None:
        """A process that was told to end exits."""
        for proc in self.procs.values():
            if proc.ended and not proc.exited:
                proc.exited = True
                self.feed(JobExited(proc.job_id, proc.run, "exit 0"))
                return

    @rule(job=JOBS)
    def crash(self, job: str) -> None:
        proc = self.running(job)
        if proc is None:
            return
        was = self.state.phase(job)
        proc.ended = proc.exited = True
        self.feed(JobExited(job, proc.run, "exited with code 3"))
        if was is not None and was.is_final:  # a restart ended its run already
            assert self.state.phase(job) is was
        else:
            expected = JobPhase.ENDED if was is JobPhase.STOPPING else JobPhase.FAILED
            assert self.state.phase(job) is expected

    @rule(stale=st.booleans())
    def upload_ok(self, stale: bool) -> None:
        grant = "never-asked" if stale or not self.grants else self.grants[-1]
        self.feed(FromServer(UploadOk(id=grant)))
        assert grant not in self.state.held()

    @rule(seconds=st.sampled_from([1.0, GRANT_WAIT_S]))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.feed(Tick(self.now))

    @rule(up=st.booleans())
    def connection(self, up: bool) -> None:
        self.feed(Connected() if up else Disconnected())
        if not up:
            assert self.state.held() == {}

    # -- invariants -----------------------------------------------------------------------
    def lost(self) -> Counter[str]:
        return Counter(t for record in self.records.values() for t in record.lost)

    @invariant()
    def every_task_is_answered_once_at_most(self) -> None:
        lost = self.lost()
        pending = Counter(t for r in self.state.jobs.values() for t in r.pending)
        held = Counter(task for _, task in self.state.held().values())
        for task_id in self.tasks:
            count = self.answers[task_id] + lost[task_id] + pending[task_id] + held[task_id]
            assert count == 1, (task_id, self.answers[task_id], lost, pending, held)

    @invariant()
    def runs_that_are_over_hold_nothing(self) -> None:
        for job_id, record in self.state.jobs.items():
            if record.phase.is_final:
                assert job_id not in self.held_resources, (job_id, record.phase)

    @invariant()
    def processes_belong_to_live_runs(self) -> None:
        for proc in self.procs.values():
            if not proc.ended:
                record = self.state.jobs.get(proc.job_id)
                assert record is not None and record.run == proc.run
                assert record.phase is JobPhase.RUNNING

    def teardown(self) -> None:
        self.feed(Shutdown())
        while any(p.ended and not p.exited for p in self.procs.values()):
            self.reap()
        assert all(r.phase.is_final for r in self.state.jobs.values())
        assert self.held_resources == set() and self.state.held() == {}
        assert all(p.exited for p in self.procs.values())
        lost = self.lost()
        for task_id in self.tasks:
            assert self.answers[task_id] + lost[task_id] == 1, task_id


SiteMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestSiteMachine = SiteMachine.TestCase
