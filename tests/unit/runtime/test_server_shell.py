"""The server parent's shell: each action of the router done (``ServerParent._do``), with fake
site connections, a fake job process channel and a memory store."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import fedra.runtime.server_parent as server_parent
from fedra.core import FLModel, JobStatus
from fedra.protocol import (
    Abort,
    AbortJob,
    Go,
    Result,
    ResultRefused,
    Sites,
    StartJob,
    Task,
    TaskLost,
    model_zip,
)
from fedra.runtime.routing import (
    EndProcess,
    Failure,
    FreeUploads,
    JobDone,
    Phase,
    Record,
    Refusals,
    Refused,
    SiteSays,
    StartOn,
    TasksOut,
    ToJob,
    ToSite,
)
from fedra.runtime.server_parent import ServerParent
from fedra.serverapp.resultspec import Expectation
from fedra.transport import SharedBody
from fedra.wire import Envelope
from tests.unit.runtime.server_fakes import (
    channel,
    conn,
    connect,
    run_job,
    shell,
    submit,
)

ANY = Expectation.of_task(None)


class InlineThreads:
    """Stands for the ``threading`` module in server_parent: a started thread runs at once."""

    def __init__(self) -> None:
        self.started: list[tuple[Any, tuple[Any, ...]]] = []

    def Thread(self, target: Any, args: tuple[Any, ...] = (), **_: Any) -> Any:
        def start() -> None:
            self.started.append((target, args))
            target(*args)

        return SimpleNamespace(start=start)


@pytest.fixture
def sp(tmp_path: Path) -> ServerParent:
    return shell(tmp_path)


# -- ToSite ---------------------------------------------------------------------------------
def test_a_message_for_a_site_is_encoded_and_sent_to_it(sp: ServerParent) -> None:
    sp._do(ToSite("site-a", ResultRefused("j1", "t1", "wrong shape")), None)
    assert conn(sp, "site-a").messages() == [ResultRefused("j1", "t1", "wrong shape")]
    assert conn(sp, "site-b").sent == []


def test_a_task_is_left_to_the_caller_who_sends_it_with_its_model(sp: ServerParent) -> None:
    sp._do(ToSite("site-a", Task("j1", "t1", "train", "site-a")), None)
    assert conn(sp, "site-a").sent == []


def test_a_message_for_a_site_that_is_gone_or_failing_is_dropped(sp: ServerParent) -> None:
    connect(sp, "site-c", fail=True)
    sp._do(ToSite("site-c", AbortJob("j1")), None)  # its send fails: no exception
    sp._do(ToSite("nobody", AbortJob("j1")), None)
    assert conn(sp, "site-c").sent == []
    assert not sp.send_to_site("site-c", Envelope("abort_job", {"job_id": "j1"}))
    assert not sp.send_to_site("nobody", Envelope("abort_job", {"job_id": "j1"}))


def test_a_broadcast_reader_for_a_site_that_is_gone_leaves_the_shared_body(
    sp: ServerParent,
) -> None:
    model = FLModel(params={"w": np.zeros(4, np.float32)})
    shared = SharedBody(Envelope(Task.KIND, {}, model), 2)
    task = Envelope(Task.KIND, {"job_id": "j1", "task_id": "t", "task_name": "train"})
    assert not sp.send_to_site("nobody", task, shared)
    assert sp.send_to_site("site-a", task, shared, drain=True)
    assert conn(sp, "site-a").shared == [shared]


# -- StartOn --------------------------------------------------------------------------------
def test_start_on_sends_the_jobs_start_with_its_zip_and_signature(sp: ServerParent) -> None:
    job = run_job(sp, sites=("site-a", "site-b"))
    submission = {"signature": "c2ln", "certificate": "-----BEGIN CERTIFICATE-----"}
    sp.store.update_run_info(job.job_id, {"submission": submission})
    job.start = None  # read from the store at a site's first start: here, after the above
    sp._do(StartOn("j1", "site-b"), None)
    [env] = conn(sp, "site-b").sent
    start = conn(sp, "site-b").messages()[0]
    assert start == StartJob("j1", ("site-a", "site-b"), "c2ln", "-----BEGIN CERTIFICATE-----")
    assert model_zip(env.model) == b"PK-zip"
    assert conn(sp, "site-a").sent == []


def test_start_on_every_site_reads_the_job_from_the_store_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the job's record and zip were read from the store for each site's start."""
    sites = tuple(f"site-{i}" for i in range(50))
    sp = shell(tmp_path, sites)
    job = run_job(sp, sites=sites)
    job.start = None  # as launched, before any site heard of it
    reads: list[str] = []
    job_zip, get = sp.store.job_zip, sp.store.get
    monkeypatch.setattr(sp.store, "job_zip", lambda job_id: reads.append("zip") or job_zip(job_id))
    monkeypatch.setattr(sp.store, "get", lambda job_id: reads.append("get") or get(job_id))
    for site in sites:
        sp._do(StartOn(job.job_id, site), None)
    assert sorted(reads) == ["get", "zip"]
    assert all(model_zip(conn(sp, s).sent[0].model) == b"PK-zip" for s in sites)


def test_start_on_a_job_that_is_not_running_here_sends_nothing(sp: ServerParent) -> None:
    submit(sp, "j2")
    sp._do(StartOn("j2", "site-a"), None)
    assert conn(sp, "site-a").sent == []


def test_a_running_job_starts_on_its_connected_sites_then_its_process_goes(
    sp: ServerParent,
) -> None:
    job = run_job(sp, sites=("site-a", "site-b", "site-c"))  # site-c is not connected
    assert job.job_id == "j1"
    # run_job cleared what JobRunning sent; a site (re)joining hears of the job again.
    handle = connect(sp, "site-c")
    assert [type(m) for m in conn(sp, "site-c").messages()] == [StartJob]
    assert channel(job).messages() == [Sites(("site-a", "site-b", "site-c"))]
    assert handle.name == "site-c"


# -- ToJob ----------------------------------------------------------------------------------
def test_a_result_goes_to_its_job_process_with_its_model(sp: ServerParent) -> None:
    job = run_job(sp)
    model = FLModel(params={"w": np.ones(3, np.float32)})
    sp._do(ToJob("j1", Result("j1", "t1", "train", site="site-a")), model)
    [env] = channel(job).sent
    assert channel(job).messages() == [Result("j1", "t1", "train", site="site-a")]
    assert env.model is not None and env.model.params is not None
    assert np.array_equal(env.model.params["w"], np.ones(3, np.float32))


def test_only_a_result_carries_the_model(sp: ServerParent) -> None:
    job = run_job(sp)
    sp._do(ToJob("j1", TaskLost("t1")), FLModel(params={"w": np.ones(3, np.float32)}))
    [env] = channel(job).sent
    assert env.model is None and channel(job).messages() == [TaskLost("t1")]


def test_a_message_for_a_job_that_is_not_running_here_is_dropped(sp: ServerParent) -> None:
    job = run_job(sp)
    sp._do(ToJob("other", Go()), None)
    assert channel(job).sent == []


def test_feed_passes_a_results_model_on_to_its_job(sp: ServerParent) -> None:
    job = run_job(sp)
    sp.feed(TasksOut("j1", "train", (_target("site-a", "t1"),), ANY))
    model = FLModel(params={"w": np.full(2, 7.0, np.float32)})
    from fedra.runtime.routing import ResultIn

    actions = sp.feed(ResultIn("site-a", Result("j1", "t1", "train"), None), model)
    assert actions == [ToJob("j1", Result("j1", "t1", "train", site="site-a"))]
    [env] = channel(job).sent
    assert env.model is not None and env.model.params is not None
    assert env.model.params["w"].tolist() == [7.0, 7.0]


def _target(site: str, task_id: str) -> Any:
    from fedra.protocol import Target

    return Target(site, task_id)


# -- Refused --------------------------------------------------------------------------------
def test_a_refused_result_costs_one_log_line(
    sp: ServerParent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fedra.server")
    sp._do(Refused("site-a", "j1", "t" * 200, "its params are too big"), None)
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        f"refused the result of site site-a for task {'t' * 64} of job j1: its params are too big"
    )
    assert conn(sp, "site-a").sent == []  # the router's ToSite tells the site, not this


# -- EndProcess -----------------------------------------------------------------------------
def test_end_process_ends_the_jobs_process_group(
    sp: ServerParent, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = InlineThreads()
    ended: list[Any] = []
    monkeypatch.setattr(server_parent, "threading", threads)
    monkeypatch.setattr(server_parent, "end_group", ended.append)
    job = run_job(sp)
    sp._do(EndProcess("j1"), None)
    sp._do(EndProcess("not-running"), None)
    assert ended == [job.proc] and len(threads.started) == 1


def test_end_process_while_detaching_leaves_it_to_the_detach(
    sp: ServerParent, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = InlineThreads()
    monkeypatch.setattr(server_parent, "threading", threads)
    run_job(sp)
    sp._detaching = True
    sp._do(EndProcess("j1"), None)
    assert threads.started == []


def test_step_down_detaches_running_jobs_and_drops_the_sites(
    sp: ServerParent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended: list[Any] = []
    monkeypatch.setattr(server_parent, "end_detached", ended.extend)
    threads = InlineThreads()
    monkeypatch.setattr(server_parent, "threading", threads)
    job = run_job(sp)
    sp.to_resume.add("old")
    sp.waiting["queued"] = "waiting"
    sp.step_down("lost the lease")
    assert ended == [job] and threads.started == []  # ended once, by the detach
    assert sp.phase("j1") == Phase.DETACHED and not sp.hot
    assert not sp.to_resume and not sp.waiting
    assert all(conn(sp, s).closed for s in ("site-a", "site-b"))
    assert sp.store.get("j1").status == JobStatus.RUNNING  # whoever resumes it ends it
    assert conn(sp, "site-a").sent == []  # the sites hear nothing of the job
    sp.step_down("again")  # cold already: nothing more
    assert ended == [job]


# -- FreeUploads ----------------------------------------------------------------------------
def _grant(sp: ServerParent, site: str, job_id: str, grant_id: str) -> None:
    assert sp.uploads.request(site, job_id) == 0
    assert sp.uploads.wait_grant(site, job_id, grant_id, lambda: False, poll=0.01)


def test_free_uploads_of_a_site_in_one_job_keeps_its_other_grants(sp: ServerParent) -> None:
    run_job(sp, "j1")
    run_job(sp, "j2")
    _grant(sp, "site-a", "j1", "g1")
    _grant(sp, "site-a", "j2", "g2")
    sp._do(FreeUploads("j1", "site-a"), None)
    assert set(sp.uploads.grants()) == {"g2"}
    slot = sp.uploads.gate_slot("j1", None)
    assert slot is not None and slot.acquire(blocking=False)
    slot.release()


def test_free_uploads_of_a_site_in_every_job(sp: ServerParent) -> None:
    run_job(sp, "j1")
    run_job(sp, "j2")
    _grant(sp, "site-a", "j1", "g1")
    _grant(sp, "site-a", "j2", "g2")
    sp._do(FreeUploads(None, "site-a"), None)
    assert sp.uploads.grants() == {}


def test_free_uploads_of_a_job_closes_its_slot(sp: ServerParent) -> None:
    run_job(sp, "j1")
    _grant(sp, "site-b", "j1", "g1")
    sp._do(FreeUploads("j1"), None)
    assert sp.uploads.grants() == {}
    assert sp.uploads.gate_slot("j1", None) is sp.uploads.gate_slot(None, None)  # stray now
    sp._do(FreeUploads(None), None)  # nothing named: nothing done


# -- Record and Refusals --------------------------------------------------------------------
def test_record_writes_the_failure_and_the_final_status(sp: ServerParent) -> None:
    run_job(sp)
    failure = Failure("site-b", "t3", "Traceback: boom", "site-b failed task t3")
    sp._do(Record("j1", JobStatus.FINISHED_EXECUTION_EXCEPTION, "boom", failure), None)
    record = sp.store.get("j1")
    assert record.status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert record.history[-1].reason == "boom"
    assert record.failure == {
        "site": "site-b",
        "task": "t3",
        "traceback": "Traceback: boom",
        "reason": "site-b failed task t3",
    }


def test_record_without_a_failure_leaves_none(sp: ServerParent) -> None:
    run_job(sp)
    sp._do(Record("j1", JobStatus.FINISHED_COMPLETED, "all workflows finished"), None)
    record = sp.store.get("j1")
    assert record.status == JobStatus.FINISHED_COMPLETED and record.failure is None


def test_the_first_word_on_a_jobs_end_stands(sp: ServerParent) -> None:
    run_job(sp)
    sp.store.transition("j1", JobStatus.FINISHED_ABORTED, "aborted by an admin")
    sp._do(Record("j1", JobStatus.FINISHED_COMPLETED, "all workflows finished"), None)
    assert sp.store.get("j1").status == JobStatus.FINISHED_ABORTED


def test_refusals_go_to_the_jobs_run_info(sp: ServerParent) -> None:
    run_job(sp)
    sp._do(Refusals("j1", {"site-a": "no GPU"}), None)
    sp._do(Refusals("j1", {"site-a": "no GPU", "site-b": "not signed"}), None)
    refusals = sp.store.get("j1").run_info["site_refusals"]
    assert refusals == {"site-a": "no GPU", "site-b": "not signed"}


def test_a_site_refusing_a_job_is_recorded_through_feed(sp: ServerParent) -> None:
    from fedra.protocol import JobState

    job = run_job(sp)
    sp.feed(SiteSays("site-a", JobState("j1", "failed", "site-a refuses job j1: no GPU")))
    info = sp.store.get("j1").run_info
    assert info["site_refusals"] == {"site-a": "site-a refuses job j1: no GPU"}
    assert channel(job).messages()[0].KIND == "site_failed"


# -- abort and finish -----------------------------------------------------------------------
def test_abort_records_first_then_stops_the_job_everywhere(
    sp: ServerParent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended: list[Any] = []
    monkeypatch.setattr(server_parent, "threading", InlineThreads())
    monkeypatch.setattr(server_parent, "end_group", ended.append)
    job = run_job(sp)
    _grant(sp, "site-a", "j1", "g1")
    sp.to_resume.add("j1")
    assert sp.abort("j1", "by alice") == JobStatus.FINISHED_ABORTED
    assert sp.store.get("j1").status == JobStatus.FINISHED_ABORTED
    assert "j1" not in sp.to_resume and sp.phase("j1") == Phase.ABORTING
    assert channel(job).messages() == [Abort("by alice")]
    assert conn(sp, "site-a").messages() == [AbortJob("j1", "by alice")]
    assert conn(sp, "site-b").messages() == [AbortJob("j1", "by alice")]
    assert ended == [job.proc] and sp.uploads.grants() == {}


def test_abort_of_an_ended_job_changes_nothing(sp: ServerParent) -> None:
    run_job(sp)
    sp.store.transition("j1", JobStatus.FINISHED_COMPLETED, "done")
    assert sp.abort("j1") == JobStatus.FINISHED_COMPLETED
    assert sp.phase("j1") == Phase.RUNNING  # the router was not told
    assert conn(sp, "site-a").sent == []


def test_abort_of_a_queued_job_records_it_and_starts_nothing(sp: ServerParent) -> None:
    submit(sp, "j2")
    assert sp.abort("j2") == JobStatus.FINISHED_ABORTED
    assert sp.store.get("j2").status == JobStatus.FINISHED_ABORTED
    assert all(not conn(sp, s).sent for s in ("site-a", "site-b"))


# -- await_reports --------------------------------------------------------------------------
def test_await_reports_returns_at_once_unless_a_job_completed(sp: ServerParent) -> None:
    from fedra.protocol import Done

    run_job(sp)
    sp.await_reports("j1", 1e9)  # not done: no wait
    sp.await_reports("nothing-such", 1e9)
    failed = Done("FINISHED:EXECUTION_EXCEPTION", "boom")
    sp.feed(JobDone("j1", JobStatus.FINISHED_EXECUTION_EXCEPTION, failed))
    sp.await_reports("j1", 1e9)  # failed: whether the sites ran it does not matter


def test_await_reports_gives_up_at_its_deadline(sp: ServerParent) -> None:
    from fedra.protocol import Done

    run_job(sp)
    sp.feed(JobDone("j1", JobStatus.FINISHED_COMPLETED, Done("FINISHED:COMPLETED")))
    assert not sp._router.all_reported("j1")
    sp.await_reports("j1", 0.0)  # neither site said: returns at its deadline


def test_await_reports_returns_once_each_connected_site_has_said(sp: ServerParent) -> None:
    from fedra.protocol import Done, JobState

    run_job(sp)
    sp.feed(SiteSays("site-a", JobState("j1", "started")))
    sp.feed(SiteSays("site-b", JobState("j1", "failed", "no")))
    sp.feed(JobDone("j1", JobStatus.FINISHED_COMPLETED, Done("FINISHED:COMPLETED")))
    assert sp._router.all_reported("j1")
    sp.await_reports("j1", 1e9)


def test_upload_allowed_needs_a_running_job_of_the_site_and_a_task(sp: ServerParent) -> None:
    run_job(sp, sites=("site-a",))
    assert sp.upload_allowed("j1", "site-a") == (True, False)
    sp.feed(TasksOut("j1", "train", (_target("site-a", "t1"),), ANY))
    assert sp.upload_allowed("j1", "site-a") == (True, True)
    assert sp.upload_allowed("j1", "site-b") == (False, False)  # not one of its sites
    assert sp.upload_allowed("j9", "site-a") == (False, False)


def test_a_small_broadcast_to_many_sites_starts_a_few_sender_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: one thread per site and round (a thousand thread starts per round)."""
    import threading

    import fedra.runtime.server_jobs as server_jobs

    sites = tuple(f"site-{i}" for i in range(200))
    sp = shell(tmp_path, sites)
    job = run_job(sp, "j1", sites)
    started: list[threading.Thread] = []

    class Counted(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(server_jobs.threading, "Thread", Counted)
    targets = tuple(_target(site, f"t-{site}") for site in sites)
    model = FLModel(params={"w": np.zeros((3, 3), dtype=np.float32)})
    server_jobs._deliver(sp, job, TasksOut("j1", "train", targets, ANY), model)
    assert len(started) == server_jobs.SENDERS
    assert all([type(m) for m in conn(sp, site).messages()] == [Task] for site in sites)
