"""The site's state machine, event by event: no socket, thread, process or clock."""

from __future__ import annotations

import numpy as np
import pytest

from fedra.core import FLModel, InvalidTransition
from fedra.protocol import (
    UPLOAD_ASK_BYTES,
    AbortJob,
    EndJob,
    JobState,
    MayUpload,
    Result,
    StartJob,
    Task,
    UploadOk,
    Welcome,
    zip_model,
)
from fedra.runtime.site_events import (
    Action,
    CheckJob,
    Connected,
    Disconnect,
    Disconnected,
    EndProcess,
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


def sent(actions: list[Action]) -> list[object]:
    return [a.message for a in actions if isinstance(a, SendToServer)]


def start(state: SiteState, job: str = "j") -> int:
    """Start ``job`` up to RUNNING; its run."""
    (check,) = state.handle(FromServer(StartJob(job_id=job, sites=("x", SITE)), zip_model(b"z")))
    assert isinstance(check, CheckJob)
    (launch,) = state.handle(JobChecked(job, check.run))
    assert launch == StartProcess(job, check.run, index=1, num_sites=2)
    assert sent(state.handle(JobReady(job, check.run))) == [JobState(job_id=job, state="started")]
    assert state.phase(job) is JobPhase.RUNNING
    return check.run


def task(job: str = "j", task_id: str = "t1") -> FromServer:
    return FromServer(Task(job_id=job, task_id=task_id, task_name="train", site=SITE))


def result(job: str = "j", task_id: str = "t1") -> Result:
    return Result(job_id=job, task_id=task_id, task_name="train", site=SITE)


def test_a_task_goes_to_the_running_job_and_its_result_to_the_server() -> None:
    state = SiteState(SITE)
    state.handle(Connected())
    run = start(state)
    model = FLModel(params={"w": np.zeros(2)})
    (to_job,) = state.handle(FromServer(task().message, model))
    assert isinstance(to_job, SendToJob) and to_job.model is model and to_job.run == run
    answer = state.handle(JobResult("j", run, result(), None, nbytes=16))
    assert sent(answer) == [result()]
    # A second answer to the same task, or one to a task it was not given, is refused.
    assert state.handle(JobResult("j", run, result(), None)) == []
    assert state.handle(JobResult("j", run, result("other"), None)) == []


def test_tasks_of_jobs_not_running_here_get_an_error_result() -> None:
    state = SiteState(SITE)
    (answer,) = sent(state.handle(task("nope")))
    assert isinstance(answer, Result) and answer.error == "job nope is not running here"
    (check,) = state.handle(FromServer(StartJob(job_id="r", sites=(SITE,)), zip_model(b"z")))
    assert isinstance(check, CheckJob)
    refused = state.handle(JobChecked("r", check.run, refusal="no byoc"))
    assert refused[0] == FreeResources("r")
    assert sent(refused) == [
        JobState(job_id="r", state="failed", detail="site-a refuses job r: no byoc")
    ]
    assert state.phase("r") is JobPhase.REFUSED
    (answer,) = sent(state.handle(task("r")))
    assert isinstance(answer, Result) and answer.error == "site-a refuses job r: no byoc"


def test_a_bad_start_job_is_answered_with_a_failed_state() -> None:
    state = SiteState(SITE)
    other = state.handle(FromServer(StartJob(job_id="j", sites=("b",)), zip_model(b"z")))
    no_zip = state.handle(FromServer(StartJob(job_id="j", sites=(SITE,))))
    for actions in (other, no_zip):
        assert actions == [
            SendToServer(JobState(job_id="j", state="failed", detail="bad start_job message"))
        ]
    assert state.phase("j") is None


def test_a_process_that_exits_on_its_own_fails_the_job_and_frees_it() -> None:
    state = SiteState(SITE)
    run = start(state)
    state.handle(task())
    actions = state.handle(JobExited("j", run, "exited with code 3"))
    assert FreeResources("j", reclaim=True) in actions
    assert sent(actions) == [JobState(job_id="j", state="failed", detail="exited with code 3")]
    assert state.phase("j") is JobPhase.FAILED and state.jobs["j"].lost == ("t1",)
    assert sent(state.handle(JobSendFailed("j", run, task().message))) == []  # answered: lost


def test_end_and_abort_twice_and_for_jobs_never_started() -> None:
    state = SiteState(SITE)
    assert state.handle(FromServer(AbortJob(job_id="never"))) == [FreeResources("never")]
    run = start(state)
    assert state.handle(FromServer(EndJob(job_id="j"))) == [EndProcess("j", run, abort=False)]
    assert state.handle(FromServer(AbortJob(job_id="j"))) == []  # already ending
    assert state.live_jobs() == ["j"]  # until its process has exited
    assert state.handle(JobExited("j", run)) == [FreeResources("j")]
    assert state.phase("j") is JobPhase.ENDED and state.live_jobs() == []
    assert state.handle(FromServer(EndJob(job_id="j"))) == [FreeResources("j")]


def test_a_restart_ends_the_old_process_and_ignores_its_late_words() -> None:
    state = SiteState(SITE)
    old = start(state)
    actions = state.handle(FromServer(StartJob(job_id="j", sites=(SITE,)), zip_model(b"z")))
    assert actions[:2] == [EndProcess("j", old, abort=True), FreeResources("j")]
    assert isinstance(actions[2], CheckJob) and actions[2].run != old
    assert state.handle(JobExited("j", old, "killed")) == []
    assert state.phase("j") is JobPhase.CHECKING


def test_an_abort_while_starting_ends_the_process_once_it_is_ready() -> None:
    state = SiteState(SITE)
    (check,) = state.handle(FromServer(StartJob(job_id="j", sites=(SITE,)), zip_model(b"z")))
    assert isinstance(check, CheckJob)
    state.handle(JobChecked("j", check.run))
    assert state.handle(Shutdown()) == [EndProcess("j", check.run, abort=True)]
    assert state.handle(JobReady("j", check.run)) == [EndProcess("j", check.run, abort=True)]
    assert state.handle(JobExited("j", check.run)) == [FreeResources("j")]
    assert state.phase("j") is JobPhase.ENDED
    # Had it failed to start instead, it would have ended too.
    (check,) = state.handle(FromServer(StartJob(job_id="k", sites=(SITE,)), zip_model(b"z")))
    assert isinstance(check, CheckJob)
    state.handle(JobChecked("k", check.run))
    state.handle(FromServer(AbortJob(job_id="k")))
    assert state.handle(JobStartFailed("k", check.run, "no GPU")) == [
        FreeResources("k", reclaim=True)
    ]
    assert state.phase("k") is JobPhase.ENDED


def test_a_big_result_waits_for_its_grant_then_names_it() -> None:
    state = SiteState(SITE)
    state.handle(Connected())
    run = start(state)
    state.handle(task())
    big = JobResult("j", run, result(), None, UPLOAD_ASK_BYTES + 1, "g1", now=10.0)
    assert sent(state.handle(big)) == [MayUpload(id="g1", job_id="j")]
    assert state.held() == {"g1": ("j", "t1")}
    assert state.handle(Tick(10.0 + GRANT_WAIT_S - 1)) == []
    (go,) = sent(state.handle(FromServer(UploadOk(id="g1"))))
    assert isinstance(go, Result) and go.grant == "g1" and state.held() == {}
    assert state.handle(FromServer(UploadOk(id="g1"))) == []  # late or twice: nothing


def test_a_big_result_goes_as_it_is_when_the_wait_ends() -> None:
    state = SiteState(SITE)
    state.handle(Connected())
    run = start(state)
    for task_id, now in (("t1", 0.0), ("t2", 100.0)):
        state.handle(task(task_id=task_id))
        state.handle(JobResult("j", run, result(task_id=task_id), None, 1 << 30, task_id, now))
    (first,) = sent(state.handle(Tick(GRANT_WAIT_S)))  # the first waited long enough
    assert first == result(task_id="t1")
    (second,) = sent(state.handle(Disconnected()))  # no server to wait for
    assert second == result(task_id="t2")
    state.handle(task(task_id="t3"))
    unasked = state.handle(JobResult("j", run, result(task_id="t3"), None, 1 << 30, "g3"))
    assert sent(unasked) == [result(task_id="t3")]  # not connected: nobody to ask


def test_a_stale_server_is_dropped() -> None:
    state = SiteState(SITE)
    state.handle(Connected(ssid=4))
    assert state.handle(FromServer(Welcome(server="s", ssid=4))) == []
    (drop,) = state.handle(FromServer(Welcome(server="s", ssid=3)))
    assert isinstance(drop, Disconnect) and "session 3, not 4" in drop.reason


def test_the_table_refuses_illegal_transitions() -> None:
    record = SiteJobRecord("j", 1, (SITE,))
    with pytest.raises(InvalidTransition):
        record.move(JobPhase.RUNNING)  # not started yet
    record.move(JobPhase.REFUSED)
    assert record.phase.is_final
    with pytest.raises(InvalidTransition):
        record.move(JobPhase.STARTING)
