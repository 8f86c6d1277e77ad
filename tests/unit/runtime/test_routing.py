"""The router of running jobs (pure): unit tests, and random interleavings of site joins and
leaves, late, repeated and stray results, aborts and step downs (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fedra.core import JobStatus
from fedra.protocol import (
    AbortJob,
    Done,
    EndJob,
    Go,
    JobState,
    Message,
    Result,
    ResultRefused,
    SiteFailed,
    Target,
    Task,
    TaskLost,
)
from fedra.runtime.routing import (
    PHASES,
    AbortAsked,
    Action,
    EndProcess,
    FreeUploads,
    IllegalPhase,
    JobDone,
    JobEnded,
    JobLaunched,
    JobRunning,
    Phase,
    Record,
    Refusals,
    Refused,
    ResultHead,
    ResultIn,
    Router,
    SiteJoined,
    SiteLeft,
    SiteSays,
    StartOn,
    StepDown,
    TasksOut,
    ToJob,
    ToSite,
)
from fedra.serverapp.resultspec import Expectation

ANY = Expectation.of_task(None)
SITES = ("a", "b", "c")


def started(*sites: str) -> Router:
    router = Router()
    for site in sites:
        router.handle(SiteJoined(site))
    router.handle(JobLaunched("j1", sites))
    router.handle(JobRunning("j1"))
    return router


def to_job(actions: list[Action]) -> list[object]:
    return [a.message for a in actions if isinstance(a, ToJob)]


def test_a_job_starts_on_its_connected_sites_then_goes() -> None:
    router = Router()
    router.handle(SiteJoined("a"))
    router.handle(JobLaunched("j1", ("a", "b")))
    actions = router.handle(JobRunning("j1"))
    assert actions == [StartOn("j1", "a"), ToJob("j1", Go())]
    assert router.handle(SiteJoined("b"))[0] == StartOn("j1", "b")  # it (re)joins: told
    assert router.phase("j1") == Phase.RUNNING


def test_a_result_is_passed_on_once_and_only_for_its_site() -> None:
    router = started("a", "b")
    out = router.handle(TasksOut("j1", "train", (Target("a", "t1"),), ANY))
    assert out == [ToSite("a", Task("j1", "t1", "train", "a"))]
    stray = router.handle(ResultIn("b", Result("j1", "t1", "train"), None))
    assert ToSite("b", ResultRefused("j1", "t1", stray[0].why)) in stray  # type: ignore[union-attr]
    passed = router.handle(ResultIn("a", Result("j1", "t1", "train"), None))
    assert to_job(passed) == [Result("j1", "t1", "train", site="a")]
    again = router.handle(ResultIn("a", Result("j1", "t1", "train"), None))
    assert not [m for m in to_job(again) if isinstance(m, Result)]


def test_a_refusal_gives_up_only_the_refused_sites_own_task() -> None:
    router = started("a", "b")
    router.handle(TasksOut("j1", "train", (Target("a", "t1"), Target("b", "t2")), ANY))
    forged = router.handle(ResultIn("b", Result("j1", "t1", "train"), None))
    assert to_job(forged) == [] and router.has_task("j1", "a")  # a's task still waits
    first = router.handle(ResultHead("a", Result("j1", "t1", "train"), None))
    assert first == []  # admitted: being received
    second = router.handle(ResultHead("a", Result("j1", "t1", "train"), None))
    assert [type(a) for a in second] == [Refused, ToSite] and router.has_task("j1", "a")
    lie = router.handle(ResultHead("b", Result("j1", "t2", "train"), None, "too big"))
    assert to_job(lie) == [TaskLost("t2")] and FreeUploads("j1", "b") in lie
    passed = router.handle(ResultIn("a", Result("j1", "t1", "train"), None))
    assert to_job(passed) == [Result("j1", "t1", "train", site="a")]


def test_a_task_for_a_site_that_is_gone_is_lost_at_once() -> None:
    router = started("a", "b")
    router.handle(SiteLeft("b"))
    out = router.handle(TasksOut("j1", "train", (Target("a", "t1"), Target("b", "t2")), ANY))
    assert [a for a in out if isinstance(a, ToSite)] == [
        ToSite("a", Task("j1", "t1", "train", "a"))
    ]
    assert to_job(out) == [TaskLost("t2")]


def test_an_aborted_job_sends_nothing_more_but_its_end() -> None:
    router = started("a")
    router.handle(TasksOut("j1", "train", (Target("a", "t1"),), ANY))
    actions = router.handle(AbortAsked("j1", "by an admin"))
    assert EndProcess("j1") in actions and ToSite("a", AbortJob("j1", "by an admin")) in actions
    assert router.handle(TasksOut("j1", "train", (Target("a", "t2"),), ANY)) == []
    late = router.handle(ResultIn("a", Result("j1", "t1", "train"), None))
    assert not to_job(late)
    ended = router.handle(JobEnded("j1", -9, 1))
    assert ToSite("a", AbortJob("j1")) in ended and not [a for a in ended if isinstance(a, Record)]
    with pytest.raises(IllegalPhase):
        router._move(
            router.jobs.setdefault("x", router.jobs.get("x") or _ended_book()), Phase.RUNNING
        )


def _ended_book():  # type: ignore[no-untyped-def]
    from fedra.runtime.routing import JobBook

    return JobBook("x", (), Phase.ENDED)


def test_a_job_its_sites_refused_does_not_complete() -> None:
    router = started("a", "b")
    for site in ("a", "b"):
        failed = JobState("j1", "failed", f"{site} refuses job j1: no")
        actions = router.handle(SiteSays(site, failed))
    assert Refusals("j1", {"a": "a refuses job j1: no", "b": "b refuses job j1: no"}) in actions
    router.handle(JobDone("j1", JobStatus.FINISHED_COMPLETED, Done("FINISHED:COMPLETED")))
    assert router.all_reported("j1")
    record = next(a for a in router.handle(JobEnded("j1", 0, 1)) if isinstance(a, Record))
    assert record.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert record.reason.startswith("2 of 2 sites refused or failed the job (0 ran it")
    assert record.failure is not None and record.failure.site == "a"


def test_one_refusal_of_two_still_completes_and_a_later_failure_is_the_workflows() -> None:
    router = started("a", "b")
    router.handle(SiteSays("a", JobState("j1", "failed", "no")))
    router.handle(SiteSays("b", JobState("j1", "started")))
    crashed = router.handle(SiteSays("b", JobState("j1", "failed", "crashed")))
    assert isinstance(to_job(crashed)[0], SiteFailed)
    router.handle(JobDone("j1", JobStatus.FINISHED_COMPLETED, Done("FINISHED:COMPLETED")))
    record = next(a for a in router.handle(JobEnded("j1", 0, 1)) if isinstance(a, Record))
    assert record.status == JobStatus.FINISHED_COMPLETED


def test_a_crashed_job_process_fails_the_job_and_ends_it_on_its_sites() -> None:
    router = started("a")
    actions = router.handle(JobEnded("j1", 3, 1, "Traceback ..."))
    assert ToSite("a", EndJob("j1")) in actions and FreeUploads("j1") in actions
    record = next(a for a in actions if isinstance(a, Record))
    assert record.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert record.failure is not None and record.failure.traceback == "Traceback ..."


def test_step_down_detaches_jobs_they_end_unrecorded() -> None:
    router = started("a")
    actions = router.handle(StepDown())
    assert EndProcess("j1") in actions and router.phase("j1") == Phase.DETACHED
    assert router.handle(JobEnded("j1", None, 1)) == [FreeUploads("j1")]


def test_the_table_has_no_way_out_of_ended() -> None:
    assert PHASES[Phase.ENDED] == frozenset()
    assert all(Phase.STARTING not in targets for targets in PHASES.values())


class Interleavings(RuleBasedStateMachine):
    """Random events against one router; what it sends must fit what happened."""

    def __init__(self) -> None:
        super().__init__()
        self.router = Router()
        self.serial = 0
        self.launched: set[str] = set()
        self.aborted: set[str] = set()
        self.detached: set[str] = set()
        self.ended: dict[str, list[Action]] = {}
        self.tasks: dict[str, str] = {}  # task id -> job id
        self.passed: set[str] = set()  # task ids whose result reached its job
        self.freed: set[str] = set()  # jobs whose upload slots were freed

    def _handle(self, event: object) -> list[Action]:
        before = {job_id: book.phase for job_id, book in self.router.jobs.items()}
        actions = self.router.handle(event)  # type: ignore[arg-type]
        for job_id, phase in before.items():
            now = self.router.phase(job_id)
            assert now == phase or now in PHASES[phase], f"{phase} -> {now}"
        if isinstance(event, SiteLeft):
            assert FreeUploads(None, event.site) in actions, "a site left holding grants"
        for action in actions:
            self._after_its_end(event, action)
            if isinstance(action, ToJob) and isinstance(action.message, Result):
                task_id = action.message.task_id
                assert task_id not in self.passed, "a result counted twice"
                assert action.job_id not in self.aborted | self.detached
                self.passed.add(task_id)
            if isinstance(action, ToSite) and isinstance(action.message, Task):
                assert action.message.job_id not in self.aborted | self.detached
            if isinstance(action, FreeUploads) and action.site is None and action.job_id:
                self.freed.add(action.job_id)
        return actions

    def _after_its_end(self, event: object, action: Action) -> None:
        """Nothing is sent to the process or the sites of a job stopped (aborted, detached)
        before this event, but its end, or a site's answer to what it sent."""
        stopped = (self.aborted | self.detached) - {getattr(event, "job_id", None)}
        if isinstance(action, ToJob):
            assert action.job_id not in stopped, f"{action.message} after the job stopped"
        if isinstance(action, ToSite):
            message: Message = action.message
            if isinstance(message, AbortJob | EndJob | ResultRefused):
                return
            assert getattr(message, "job_id", None) not in stopped
        if isinstance(action, Refused):
            assert action.why
        if isinstance(action, ToJob) and isinstance(action.message, TaskLost):
            book = self.router.jobs.get(action.job_id)  # the job gives up only what is gone
            assert book is None or action.message.task_id not in book.tasks

    @rule(site=st.sampled_from(SITES))
    def join(self, site: str) -> None:
        if site not in self.router.connected:
            self._handle(SiteJoined(site))

    @rule(site=st.sampled_from(SITES))
    def leave(self, site: str) -> None:
        if site in self.router.connected:
            self._handle(SiteLeft(site))

    @rule(sites=st.lists(st.sampled_from(SITES), min_size=1, max_size=3, unique=True))
    def launch(self, sites: list[str]) -> None:
        self.serial += 1
        job_id = f"j{self.serial}"
        self._handle(JobLaunched(job_id, tuple(sites)))
        self.launched.add(job_id)
        self._handle(JobRunning(job_id))

    def _jobs(self) -> list[str]:
        return sorted(self.launched)

    @precondition(lambda self: self.launched)
    @rule(data=st.data(), width=st.integers(1, 3))
    def tasks_out(self, data: st.DataObject, width: int) -> None:
        job_id = data.draw(st.sampled_from(self._jobs()))
        sites = data.draw(st.lists(st.sampled_from(SITES), min_size=1, max_size=width))
        targets = []
        for site in sites:
            self.serial += 1
            targets.append(Target(site, f"t{self.serial}"))
            self.tasks[f"t{self.serial}"] = job_id
        self._handle(TasksOut(job_id, "train", tuple(targets), ANY))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), site=st.sampled_from(SITES))
    def result(self, data: st.DataObject, site: str) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.tasks)))
        self._handle(ResultIn(site, Result(self.tasks[task_id], task_id, "train"), None))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), site=st.sampled_from(SITES), lie=st.booleans())
    def result_head(self, data: st.DataObject, site: str, lie: bool) -> None:
        """A big result's header at the receive gate: admitted at most once per task."""
        task_id = data.draw(st.sampled_from(sorted(self.tasks)))
        job_id = self.tasks[task_id]
        book = self.router.jobs.get(job_id)
        task = book.tasks.get(task_id) if book is not None else None
        was_admitted = task is not None and task.admitted
        oversize = "it announces too many bytes" if lie else None
        actions = self._handle(ResultHead(site, Result(job_id, task_id, "train"), None, oversize))
        admitted = not [a for a in actions if isinstance(a, Refused)]
        if admitted:
            assert task is not None and task.site == site and not lie and not was_admitted
            assert self.router.jobs[job_id].tasks[task_id].admitted
        elif was_admitted:  # a second copy: the first one still answers the task
            assert task_id in self.router.jobs[job_id].tasks

    @precondition(lambda self: self.launched)
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self._jobs()))
        if self.router.phase(job_id) in (Phase.STARTING, Phase.RUNNING, Phase.ENDING):
            self.aborted.add(job_id)
        self._handle(AbortAsked(job_id, "test"))

    @precondition(lambda self: self.launched)
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self._jobs()))
        done = Done("FINISHED:COMPLETED")
        self._handle(JobDone(job_id, JobStatus.FINISHED_COMPLETED, done))

    @precondition(lambda self: self.launched)
    @rule(data=st.data())
    def process_ends(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self._jobs()))
        phase = self.router.phase(job_id)
        if phase == Phase.ENDED:
            return
        actions = self._handle(JobEnded(job_id, 0, 1))
        self.ended[job_id] = actions
        records = [a for a in actions if isinstance(a, Record)]
        if job_id in self.aborted or job_id in self.detached:
            assert not records  # the abort was recorded first; a detached job stays RUNNING
        else:
            assert len(records) == 1
            done = phase == Phase.ENDING
            expected = (
                JobStatus.FINISHED_COMPLETED if done else JobStatus.FINISHED_EXECUTION_EXCEPTION
            )
            assert records[0].status == expected or (done and records[0].failure is not None)
        assert job_id in self.freed, "its upload slots were not freed"

    @rule()
    def step_down(self) -> None:
        live = [j for j in self.launched if self.router.phase(j) != Phase.ENDED]
        self.detached.update(live)
        self._handle(StepDown())

    @precondition(lambda self: self.detached - self.aborted)
    @rule(data=st.data(), sites=st.lists(st.sampled_from(SITES), min_size=1, unique=True))
    def resume(self, data: st.DataObject, sites: list[str]) -> None:
        """A restarted server (or the new hot one) resumes a job left RUNNING, from its
        snapshot: the same job id, a new process. Nothing of the old run is outstanding, so a
        late result for one of its tasks is refused, never counted."""
        job_id = data.draw(st.sampled_from(sorted(self.detached - self.aborted)))
        if job_id in self.router.jobs:  # the old process has not ended yet
            return
        self.detached.discard(job_id)
        self.ended.pop(job_id, None)
        self._handle(JobLaunched(job_id, tuple(sites)))
        self._handle(JobRunning(job_id))
        assert self.router.phase(job_id) == Phase.RUNNING
        assert not self.router.jobs[job_id].tasks

    @invariant()
    def outstanding_tasks_belong_to_running_jobs_and_connected_sites(self) -> None:
        for book in self.router.jobs.values():
            if book.phase != Phase.RUNNING:
                assert not book.tasks
            for task in book.tasks.values():
                assert task.site in self.router.connected and task.site in book.sites

    @invariant()
    def ended_jobs_are_forgotten(self) -> None:
        assert not set(self.ended) & set(self.router.jobs)


Interleavings.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
test_interleavings = Interleavings.TestCase
