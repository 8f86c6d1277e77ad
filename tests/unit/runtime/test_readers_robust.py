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
from fedra.runtime import protocol as p
from fedra.runtime.intake import Intake
from fedra.runtime.server_job import _read
from fedra.server import MetricsSink, TaskBoard
from fedra.server.resultspec import Expectation
from fedra.transport import ChannelClosed
from fedra.wire import Envelope


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
            Envelope(p.LOG, {"site": "site-b", "key": "loss", "value": "abc"}),
            Envelope(p.LOG, {"site": "site-b", "key": "loss"}),
            Envelope("lost", {"site": 3}),
            Envelope(p.SITES, {"sites": "site-a"}),
            Envelope(p.LOG, {"site": "site-a", "key": "loss", "value": 0.5, "step": 1}),
            Envelope(p.GO, {}),
        ]
    )
    go = threading.Event()
    caplog.set_level(logging.WARNING, "fedra.server_job")
    _read(feed, board, sink, go, threading.Semaphore(1), threading.Event())  # type: ignore[arg-type]
    sink.close()
    assert go.is_set()  # the GO after the malformed messages was still read
    assert "refused a malformed 'log' message (site 'site-b'): 'value' must be a number" in (
        caplog.text
    )
    assert "refused a malformed 'sites' message" in caplog.text
    lines = (tmp_path / "tb" / "site-a" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"loss"' in lines[0]
    assert not (tmp_path / "tb" / "site-b").exists()


def fake_server(sites: tuple[str, ...] = ("site-a", "site-b")) -> tuple[Any, Any, list[Any]]:
    sent: list[Any] = []
    job = SimpleNamespace(
        job_id="j1", sites=list(sites), results_gate=threading.Semaphore(1), done=False
    )
    server = SimpleNamespace(
        running={"j1": job},
        sites={s: SimpleNamespace(name=s, grants={}) for s in sites},
        _to_job=lambda j, env: sent.append(("job", env)),
        send_to_site=lambda name, env: sent.append((name, env)) or True,
        store=SimpleNamespace(update_run_info=lambda job_id, info: sent.append(("info", info))),
    )
    return server, job, sent


def test_a_may_upload_flood_starts_one_grant_thread(caplog: pytest.LogCaptureFixture) -> None:
    server, job, _ = fake_server()
    job.results_gate.acquire()  # another result holds the slot: grants wait
    started: list[str] = []
    release = threading.Event()

    def grant(handle: Any, job: Any, grant_id: str) -> None:
        started.append(grant_id)
        release.wait(10)

    server._grant = grant
    caplog.set_level(logging.WARNING, "fedra.server")
    intake = Intake(server)
    handle = SimpleNamespace(name="site-b", grants={})
    intake.may_upload(handle, Envelope(p.MAY_UPLOAD, {"id": "early", "job_id": "j1"}))  # type: ignore[arg-type]
    assert "no task of it is outstanding" in caplog.text and not started
    intake.ledger.expect("j1", "site-b", "t1", Expectation.of_task(None))
    before = threading.active_count()
    for i in range(500):
        intake.may_upload(handle, Envelope(p.MAY_UPLOAD, {"id": f"g{i}", "job_id": "j1"}))  # type: ignore[arg-type]
    intake.may_upload(handle, Envelope(p.MAY_UPLOAD, {"id": "x", "job_id": "other"}))  # type: ignore[arg-type]
    assert threading.active_count() - before <= 1
    assert intake.waiting_grants() == 1
    assert "refused an upload request of site site-b for job j1: it already has one" in caplog.text
    assert caplog.text.count("it already has one") == 3  # the 1st, 10th and 100th
    assert "job other is not one of its running jobs" in caplog.text
    release.set()


def test_results_must_answer_an_outstanding_task_of_their_site() -> None:
    server, _, sent = fake_server()
    intake = Intake(server)
    task = FLModel(params={"w": np.zeros(4, np.float32)})
    intake.task_sent(
        "j1",
        Envelope(
            p.TASK,
            {"task_name": "train", "targets": [{"site": "site-a", "task_id": "ta"}]},
            task,
        ),
    )
    handle_a, handle_b = SimpleNamespace(name="site-a"), SimpleNamespace(name="site-b")

    def result(handle: Any, task_id: str, w: np.ndarray) -> None:
        headers = {"job_id": "j1", "task_id": task_id, "task_name": "train"}
        intake.result(handle, Envelope(p.RESULT, headers, FLModel(params={"w": w})))

    result(handle_b, "ta", np.zeros(4, np.float32))  # not its task
    result(handle_a, "ta", np.zeros(5, np.float32))  # wrong shape
    refused = [env for who, env in sent if who != "job" and env.kind == p.RESULT_REFUSED]
    assert [e.headers["error"] for e in refused] == [
        "task 'ta' of job j1 is not outstanding for site-b",
        "param 'w' has shape (5,), the task's model has (4,)",
    ]
    lost = [env for who, env in sent if who == "job"]
    assert [e.kind for e in lost] == ["lost", "lost"]  # the job gives the task up
    result(handle_a, "ta", np.zeros(4, np.float32))  # spent: refused, not passed on
    assert not [env for who, env in sent if who == "job" and env.kind == p.RESULT]
    intake.ledger.expect("j1", "site-a", "tb", Expectation.of_task(task))
    result(handle_a, "tb", np.zeros(4, np.float32))
    assert [env.kind for who, env in sent if who == "job"][-1] == p.RESULT


def test_a_job_its_sites_refused_does_not_complete() -> None:
    from fedra.core import JobStatus

    server, job, sent = fake_server()
    intake = Intake(server)
    for site in ("site-a", "site-b"):
        headers = {"job_id": "j1", "state": "failed", "detail": f"{site} refuses job j1: no"}
        intake.job_state(SimpleNamespace(name=site), Envelope(p.JOB_STATE, headers))  # type: ignore[arg-type]
    assert (
        "info",
        {
            "site_refusals": {
                "site-a": "site-a refuses job j1: no",
                "site-b": "site-b refuses job j1: no",
            }
        },
    ) in sent
    status, reason, refused = intake.final_status(
        job, 1, JobStatus.FINISHED_COMPLETED, "all workflows finished"
    )
    assert status == JobStatus.FINISHED_EXECUTION_EXCEPTION
    assert reason.startswith("2 of 2 sites refused or failed the job (0 ran it, min_clients=1)")
    assert set(refused) == {"site-a", "site-b"}
    # One refusal out of two with min_clients=1 still completes (and stays recorded).
    intake.job_state(
        SimpleNamespace(name="site-a"),  # type: ignore[arg-type]
        Envelope(p.JOB_STATE, {"job_id": "j1", "state": "failed", "detail": "no"}),
    )
    intake.job_state(
        SimpleNamespace(name="site-b"),  # type: ignore[arg-type]
        Envelope(p.JOB_STATE, {"job_id": "j1", "state": "started"}),
    )
    status, _, refused = intake.final_status(job, 1, JobStatus.FINISHED_COMPLETED, "done")
    assert status == JobStatus.FINISHED_COMPLETED and list(refused) == ["site-a"]
    # A site whose process fails after it started the job did not refuse it: the workflow
    # saw that failure (site_failed) and decides.
    for site in ("site-a", "site-b"):
        intake.job_state(
            SimpleNamespace(name=site),  # type: ignore[arg-type]
            Envelope(p.JOB_STATE, {"job_id": "j1", "state": "started"}),
        )
    intake.job_state(
        SimpleNamespace(name="site-b"),  # type: ignore[arg-type]
        Envelope(p.JOB_STATE, {"job_id": "j1", "state": "failed", "detail": "crashed"}),
    )
    status, _, refused = intake.final_status(job, 1, JobStatus.FINISHED_COMPLETED, "done")
    assert status == JobStatus.FINISHED_COMPLETED and refused == {}


def test_a_big_result_that_fits_passes_the_gate_and_reaches_its_job() -> None:
    from fedra.transport import MessageRefused
    from fedra.wire import peek_frame, prepare_envelope

    server, _, sent = fake_server()
    intake = Intake(server)
    task = FLModel(params={"w": np.zeros(1 << 19, np.float32)})  # 2 MiB
    intake.task_sent(
        "j1",
        Envelope(p.TASK, {"job_id": "j1", "task_id": "t1", "site": "site-a"}, task),
    )
    headers = {"job_id": "j1", "task_id": "t1", "task_name": "train"}
    result = Envelope(p.RESULT, headers, FLModel(params={"w": np.ones(1 << 19, np.float32)}))
    frame = peek_frame(prepare_envelope(result).head)
    assert frame is not None
    intake.gate("site-a", frame)  # admitted
    with pytest.raises(MessageRefused, match="is being received already"):
        intake.gate("site-a", frame)  # a second copy while the first is received
    intake.result(SimpleNamespace(name="site-a"), result)  # type: ignore[arg-type]
    passed = [env for who, env in sent if who == "job" and env.kind == p.RESULT]
    assert len(passed) == 1 and passed[0].headers["site"] == "site-a"
    with pytest.raises(MessageRefused, match="is not outstanding for site-a"):
        intake.gate("site-a", frame)  # answered: spent


def test_a_result_announcing_more_bytes_than_its_header_declares_is_refused() -> None:
    from fedra.transport import MessageRefused
    from fedra.wire import peek_frame, prepare_envelope

    server, _, sent = fake_server()
    intake = Intake(server)
    task = FLModel(params={"w": np.zeros(4, np.float32)})
    intake.task_sent("j1", Envelope(p.TASK, {"task_id": "t1", "site": "site-a"}, task))
    headers = {"job_id": "j1", "task_id": "t1", "task_name": "train"}
    head = prepare_envelope(Envelope(p.RESULT, headers, task)).head
    frame = peek_frame(head)
    assert frame is not None
    with pytest.raises(MessageRefused, match=r"it announces 3221225472 bytes, its header"):
        intake.gate("site-a", frame, 3 << 30, len(head))
    assert not intake.ledger.has_task("j1", "site-a")  # answered (refused)
    assert [env.kind for who, env in sent if who == "job"] == ["lost"]


def test_a_grant_whose_result_never_begins_is_withdrawn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import fedra.runtime.intake as intake_module

    monkeypatch.setattr(intake_module, "GRANT_START_S", 0.2)
    monkeypatch.setattr(intake_module, "GRANT_POLL_S", 0.02)
    server, job, _ = fake_server()
    ended: list[str] = []
    handle = SimpleNamespace(name="site-b", grants={}, conn=SimpleNamespace(closed=False))

    def grant(handle: Any, job: Any, grant_id: str) -> None:
        handle.grants[grant_id] = job.results_gate

    def end_grant(handle: Any, grant_id: str) -> None:
        handle.grants.pop(grant_id, None)
        ended.append(grant_id)

    server._grant, server._end_grant = grant, end_grant
    caplog.set_level(logging.WARNING, "fedra.server")
    intake = Intake(server)
    intake.ledger.expect("j1", "site-b", "t1", Expectation.of_task(None))
    intake._grant(handle, job, "g1", ("site-b", "j1"))  # type: ignore[arg-type]
    assert ended == ["g1"] and handle.grants == {}
    assert "site site-b sent nothing within 0 s of its upload grant for job j1" in caplog.text


def test_only_results_may_be_big() -> None:
    from fedra.transport import MessageRefused
    from fedra.wire import peek_frame, prepare_envelope

    server, _, _ = fake_server()
    intake = Intake(server)
    log_entry = Envelope(p.LOG, {"job_id": "j1", "key": "loss", "value": 1.0})
    head = prepare_envelope(log_entry).head
    frame = peek_frame(head)
    assert frame is not None
    with pytest.raises(MessageRefused, match=r"a 'log' message of 8388608 bytes: only results"):
        intake.gate("site-a", frame, 8 << 20, len(head))
