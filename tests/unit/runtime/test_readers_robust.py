"""Readers refuse a malformed message with a log line and go on (the job does not hang)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel, Task
from fedra.protocol import Log, MayUpload, Result, Target, TaskLost, encode
from fedra.runtime.routing import JobLaunched, JobRunning, SiteJoined, TasksOut
from fedra.runtime.server_job import _read
from fedra.serverapp import MetricsSink, TaskBoard
from fedra.serverapp.resultspec import Expectation
from fedra.transport import ChannelClosed
from fedra.wire import Envelope
from tests.unit.runtime.conftest import routing_server


class Feed:
    """A channel that hands out the given envelopes, then reports the parent gone."""

    def __init__(self, envelopes: list[Envelope]) -> None:
        self._envelopes = list(envelopes)

    def recv(self) -> Envelope:
        if not self._envelopes:
            raise ChannelClosed("no more")
        return self._envelopes.pop(0)


def test_the_server_jobs_reader_survives_a_malformed_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks: list[Task] = []
    board = TaskBoard(["site-a"], tasks.append)
    sink = MetricsSink(tmp_path / "tb")
    feed = Feed(
        [
            Envelope("log", {"job_id": "j", "site": "site-b", "key": "loss", "value": "abc"}),
            Envelope("log", {"job_id": "j", "site": "site-b", "key": "loss"}),
            Envelope("site_lost", {"site": 3}),
            Envelope("lost", {"site": "site-a"}),
            Envelope("sites", {"sites": "site-a"}),
            encode(Log("j", "loss", 0.5, 1, "site-a")),
            Envelope("go", {}),
        ]
    )
    go = threading.Event()
    caplog.set_level(logging.WARNING, "fedra.server_job")
    _read(feed, board, sink, go, threading.Semaphore(1), threading.Event())  # type: ignore[arg-type]
    sink.close()
    assert go.is_set()  # the GO after the malformed messages was still read
    assert "refused a malformed 'log' message from the parent: log: Expected `float`" in (
        caplog.text
    )
    assert "refused a malformed 'sites' message" in caplog.text
    assert "refused a malformed 'lost' message from the parent: a 'lost' message is not" in (
        caplog.text
    )
    lines = (tmp_path / "tb" / "site-a" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"loss"' in lines[0]
    assert not (tmp_path / "tb" / "site-b").exists()


def running(sent: list[Any], sites: tuple[str, ...] = ("site-a", "site-b")) -> Any:
    """A server parent whose job j1 runs on ``sites`` (connected); what its job process
    would receive is appended to ``sent`` as ("job", message)."""
    sp = routing_server(sent)
    job = SimpleNamespace(job_id="j1", sites=list(sites))
    sp.running["j1"] = job  # type: ignore[assignment]
    sp.uploads.open_job("j1")
    for site in sites:
        sp.sites[site] = SimpleNamespace(name=site, conn=SimpleNamespace(closed=False))  # type: ignore[assignment]
        sp.feed(SiteJoined(site))
    sp.feed(JobLaunched("j1", sites))
    sp.feed(JobRunning("j1"))
    sent.clear()
    return sp


def task_out(sp: Any, site: str, task_id: str, model: FLModel | None) -> None:
    targets = (Target(site, task_id),)
    sp.feed(TasksOut("j1", "train", targets, Expectation.of_task(model)))


def test_a_may_upload_flood_starts_one_grant_thread(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []
    sp = running(sent)
    started: list[str] = []
    release = threading.Event()

    def grant(handle: Any, ask: MayUpload) -> None:
        started.append(ask.id)
        release.wait(10)

    monkeypatch.setattr(sp.intake, "grant", grant)
    caplog.set_level(logging.WARNING, "fedra.server")
    handle = sp.sites["site-b"]
    sp.intake.may_upload(handle, MayUpload("early", "j1"))
    assert "no task of it is outstanding" in caplog.text and not started
    task_out(sp, "site-b", "t1", None)
    before = threading.active_count()
    for i in range(500):
        sp.intake.may_upload(handle, MayUpload(f"g{i}", "j1"))
    sp.intake.may_upload(handle, MayUpload("x", "other"))
    assert threading.active_count() - before <= 1
    assert sp.uploads.waiting() == 1 and started == ["g0"]
    assert "refused an upload request of site site-b for job j1: it already has one" in caplog.text
    assert caplog.text.count("it already has one") == 3  # the 1st, 10th and 100th
    assert "job other is not one of its running jobs" in caplog.text
    release.set()


def test_results_must_answer_an_outstanding_task_of_their_site() -> None:
    sent: list[Any] = []
    sp = running(sent)
    task = FLModel(params={"w": np.zeros(4, np.float32)})
    task_out(sp, "site-a", "ta", task)

    def result(site: str, task_id: str, w: np.ndarray) -> None:
        sp.intake.result(sp.sites[site], Result("j1", task_id, "train"), FLModel(params={"w": w}))

    result("site-b", "ta", np.zeros(4, np.float32))  # not its task
    result("site-a", "ta", np.zeros(5, np.float32))  # wrong shape
    refused = [env for who, env in sent if who != "job" and env.kind == "result_refused"]
    assert [e.headers["error"] for e in refused] == [
        "task 'ta' of job j1 is not outstanding for site-b",
        "param 'w' has shape (5,), the task's model has (4,)",
    ]
    to_job = [m for who, m in sent if who == "job"]
    # The job gives the task up for site-a's refused result only: site-b's cost it nothing.
    assert to_job == [TaskLost("ta")]
    result("site-a", "ta", np.zeros(4, np.float32))  # spent: refused, not passed on
    assert not [m for who, m in sent if who == "job" and isinstance(m, Result)]
    task_out(sp, "site-a", "tb", task)
    result("site-a", "tb", np.zeros(4, np.float32))
    last = [m for who, m in sent if who == "job"][-1]
    assert isinstance(last, Result) and last.site == "site-a" and last.task_id == "tb"


def test_a_big_result_that_fits_passes_the_gate_and_reaches_its_job() -> None:
    from fedra.transport import MessageRefused
    from fedra.wire import peek_frame, prepare_envelope

    sent: list[Any] = []
    sp = running(sent)
    task_out(sp, "site-a", "t1", FLModel(params={"w": np.zeros(1 << 19, np.float32)}))
    model = FLModel(params={"w": np.ones(1 << 19, np.float32)})
    message = Result("j1", "t1", "train")
    frame = peek_frame(prepare_envelope(encode(message, model)).head)
    assert frame is not None
    sp.intake.gate("site-a", frame)  # admitted
    with pytest.raises(MessageRefused, match="is being received already"):
        sp.intake.gate("site-a", frame)  # a second copy while the first is received
    sp.intake.result(sp.sites["site-a"], message, model)
    passed = [m for who, m in sent if who == "job" and isinstance(m, Result)]
    assert len(passed) == 1 and passed[0].site == "site-a"
    with pytest.raises(MessageRefused, match="is not outstanding for site-a"):
        sp.intake.gate("site-a", frame)  # answered: spent


def test_a_result_announcing_more_bytes_than_its_header_declares_is_refused() -> None:
    from fedra.transport import MessageRefused
    from fedra.wire import peek_frame, prepare_envelope

    sent: list[Any] = []
    sp = running(sent)
    task = FLModel(params={"w": np.zeros(4, np.float32)})
    task_out(sp, "site-a", "t1", task)
    head = prepare_envelope(encode(Result("j1", "t1", "train"), task)).head
    frame = peek_frame(head)
    assert frame is not None
    with pytest.raises(MessageRefused, match=r"it announces 3221225472 bytes, its header"):
        sp.intake.gate("site-a", frame, 3 << 30, len(head))
    assert not sp._router.has_task("j1", "site-a")  # answered (refused)
    assert [m for who, m in sent if who == "job"] == [TaskLost("t1")]


def test_a_grant_whose_result_never_begins_is_withdrawn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import fedra.runtime.intake as intake_module

    monkeypatch.setattr(intake_module, "GRANT_START_S", 0.2)
    monkeypatch.setattr(intake_module, "GRANT_POLL_S", 0.02)
    sent: list[Any] = []
    sp = running(sent)
    caplog.set_level(logging.WARNING, "fedra.server")
    task_out(sp, "site-b", "t1", None)
    assert sp.uploads.request("site-b", "j1") == 0
    sp.intake.grant(sp.sites["site-b"], MayUpload("g1", "j1"))
    assert [env.kind for who, env in sent if who == "site-b"][-1] == "upload_ok"
    assert sp.uploads.grants() == {}
    assert "site site-b sent nothing within 0 s of its upload grant for job j1" in caplog.text


def test_only_results_may_be_big() -> None:
    from fedra.transport import MessageRefused
    from fedra.wire import peek_frame, prepare_envelope

    sp = running([])
    head = prepare_envelope(encode(Log("j1", "loss", 1.0))).head
    frame = peek_frame(head)
    assert frame is not None
    with pytest.raises(MessageRefused, match=r"a 'log' message of 8388608 bytes: only results"):
        sp.intake.gate("site-a", frame, 8 << 20, len(head))
