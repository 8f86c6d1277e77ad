"""The server parent's intake of results and upload requests (:class:`Intake`): what the
receive gate refuses from a big message's header, how a grant's slot follows its result, and
the upload-grant protocol (granted, sent, withdrawn, given back)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fedra.runtime.intake as intake_module
from fedra.core import FLModel
from fedra.protocol import Log, MayUpload, Result, ResultRefused, Target, TaskLost, UploadOk, encode
from fedra.runtime.intake import _worth_a_line
from fedra.runtime.routing import JobDone, TasksOut
from fedra.runtime.server_parent import ServerParent
from fedra.serverapp.resultspec import Expectation
from fedra.transport import MessageRefused
from fedra.wire import Envelope, FrameHead, peek_frame, prepare_envelope
from tests.unit.runtime.server_fakes import channel, conn, run_job, shell

W4 = FLModel(params={"w": np.zeros(4, np.float32)})


def frame(env: Envelope) -> tuple[FrameHead, int]:
    """The header the receive gate sees of ``env``, and its length."""
    head = prepare_envelope(env).head
    found = peek_frame(head)
    assert found is not None
    return found, len(head)


def result_frame(
    task_id: str = "t1", model: FLModel | None = W4, grant: str | None = None, job: str = "j1"
) -> tuple[FrameHead, int]:
    return frame(encode(Result(job, task_id, "train", grant=grant), model))


def task_out(sp: ServerParent, site: str, task_id: str, model: FLModel | None = W4) -> None:
    sp.feed(TasksOut("j1", "train", (Target(site, task_id),), Expectation.of_task(model)))


def granted(sp: ServerParent, site: str, grant_id: str) -> None:
    assert sp.uploads.request(site, "j1") == 0
    assert sp.uploads.wait_grant(site, "j1", grant_id, lambda: False, poll=0.01)


@pytest.fixture
def sp(tmp_path: Path) -> ServerParent:
    server = shell(tmp_path)
    run_job(server)
    return server


# -- the receive gate -----------------------------------------------------------------------
def test_a_big_message_that_is_not_a_result_is_refused(
    sp: ServerParent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fedra.server")
    head, _ = frame(Envelope("x" * 100, {}))
    with pytest.raises(MessageRefused, match=r"a 'x{32}' message of 9 bytes: only results"):
        sp.intake.gate("site-a", head, 9)
    assert "refused a message from site site-a" in caplog.text


def test_a_result_with_malformed_headers_is_refused(
    sp: ServerParent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fedra.server")
    head, _ = frame(Envelope(Result.KIND, {"job_id": "j1", "task_id": 3, "task_name": "train"}))
    with pytest.raises(MessageRefused, match="Expected `str`, got `int`"):
        sp.intake.gate("site-a", head)
    assert "refused a result from site site-a: malformed headers" in caplog.text


def test_a_result_of_a_job_that_is_not_running_is_refused_at_the_gate(sp: ServerParent) -> None:
    head, _ = result_frame(job="j9")
    with pytest.raises(MessageRefused, match="job 'j9' is not running here"):
        sp.intake.gate("site-a", head)
    assert conn(sp, "site-a").messages() == [
        ResultRefused("j9", "t1", "job 'j9' is not running here")
    ]


def test_a_result_of_an_unknown_task_is_refused_at_the_gate(sp: ServerParent) -> None:
    task_out(sp, "site-a", "t1")
    head, _ = result_frame("t2")
    with pytest.raises(MessageRefused, match="task 't2' of job j1 is not outstanding for site-a"):
        sp.intake.gate("site-a", head)
    assert sp._router.has_task("j1", "site-a")  # its real task still waits


def test_a_result_whose_header_does_not_fit_the_task_is_refused(sp: ServerParent) -> None:
    job = sp.running["j1"]
    task_out(sp, "site-a", "t1")
    head, _ = result_frame(model=FLModel(params={"w": np.zeros((2, 2), np.float32)}))
    with pytest.raises(MessageRefused, match=r"param 'w' has shape \(2, 2\)"):
        sp.intake.gate("site-a", head)
    assert channel(job).messages() == [TaskLost("t1")]  # the round goes on without it
    assert not sp._router.has_task("j1", "site-a")


def test_a_result_received_twice_at_once_is_refused_the_second_time(sp: ServerParent) -> None:
    job = sp.running["j1"]
    task_out(sp, "site-a", "t1")
    head, _ = result_frame()
    sp.intake.gate("site-a", head)
    with pytest.raises(MessageRefused, match="is being received already"):
        sp.intake.gate("site-a", head)
    assert channel(job).messages() == []  # the first copy still answers the task
    assert sp._router.has_task("j1", "site-a")


def test_a_result_naming_another_sites_task_does_not_cost_that_site_its_task(
    sp: ServerParent,
) -> None:
    job = sp.running["j1"]
    task_out(sp, "site-a", "t1")
    head, _ = result_frame("t1")
    with pytest.raises(MessageRefused, match="not outstanding for site-b"):
        sp.intake.gate("site-b", head)  # site-b forges site-a's task id
    sp.intake.result(sp.sites["site-b"], Result("j1", "t1", "train"), W4)
    assert channel(job).messages() == []  # the job still waits for site-a's answer
    sp.intake.result(sp.sites["site-a"], Result("j1", "t1", "train"), W4)
    assert channel(job).messages() == [Result("j1", "t1", "train", site="site-a")]


def test_a_result_of_the_size_its_header_declares_passes(sp: ServerParent) -> None:
    task_out(sp, "site-a", "t1")
    env = encode(Result("j1", "t1", "train"), W4)
    prepared = prepare_envelope(env)
    head = peek_frame(prepared.head)
    assert head is not None
    sp.intake.gate("site-a", head, prepared.nbytes, len(prepared.head))
    assert conn(sp, "site-a").sent == []


def test_a_result_announcing_more_than_its_header_and_padding_is_refused(
    sp: ServerParent,
) -> None:
    from fedra.wire import ALIGN

    task_out(sp, "site-a", "t1")
    head, head_bytes = result_frame()
    declared = head_bytes + 4 * 4 + 2 * ALIGN  # the head, w (4 float32), the padding
    sp.intake.gate("site-a", head, declared, head_bytes)  # padding allowed: admitted
    task_out(sp, "site-a", "t2")
    head, head_bytes = result_frame("t2")
    with pytest.raises(MessageRefused, match=f"it announces {declared + 1} bytes"):
        sp.intake.gate("site-a", head, declared + 1, head_bytes)


def test_a_refused_result_under_a_grant_gives_its_slot_back(sp: ServerParent) -> None:
    task_out(sp, "site-a", "t1")
    granted(sp, "site-a", "g1")
    head, _ = result_frame("wrong-task", grant="g1")
    with pytest.raises(MessageRefused):
        sp.intake.gate("site-a", head)
    assert sp.uploads.grants() == {}
    slot = sp.uploads.gate_slot("j1", None)
    assert slot is not None and slot.acquire(blocking=False)


def test_an_admitted_result_under_a_grant_keeps_its_slot_and_is_not_withdrawn(
    sp: ServerParent,
) -> None:
    task_out(sp, "site-a", "t1")
    granted(sp, "site-a", "g1")
    head, _ = result_frame(grant="g1")
    sp.intake.gate("site-a", head)
    assert "g1" in sp.uploads.grants() and not sp.uploads.live("g1")


# -- results that arrived -------------------------------------------------------------------
def test_an_arrived_result_gives_its_grant_back_whatever_the_verdict(sp: ServerParent) -> None:
    job = sp.running["j1"]
    task_out(sp, "site-a", "t1")
    granted(sp, "site-a", "g1")
    handle = sp.sites["site-a"]
    sp.intake.result(handle, Result("j1", "t1", "train", grant="g1"), W4)
    assert sp.uploads.grants() == {}
    assert channel(job).messages() == [Result("j1", "t1", "train", site="site-a", grant="g1")]
    granted(sp, "site-a", "g2")
    sp.intake.result(handle, Result("j1", "t1", "train", grant="g2"), W4)  # spent: refused
    assert sp.uploads.grants() == {}


def test_a_failed_task_reaches_its_job_without_the_model(sp: ServerParent) -> None:
    job = sp.running["j1"]
    task_out(sp, "site-a", "t1")
    odd = FLModel(params={"w": np.zeros(9, np.float32)})  # would not fit: it is dropped
    sp.intake.result(sp.sites["site-a"], Result("j1", "t1", "train", error="OOM"), odd)
    [env] = channel(job).sent
    assert env.model is None
    assert channel(job).messages() == [Result("j1", "t1", "train", site="site-a", error="OOM")]


def test_a_result_names_the_site_it_came_from_not_the_one_it_claims(sp: ServerParent) -> None:
    job = sp.running["j1"]
    task_out(sp, "site-a", "t1")
    sp.intake.result(sp.sites["site-a"], Result("j1", "t1", "train", site="site-b"), W4)
    [message] = channel(job).messages()
    assert isinstance(message, Result) and message.site == "site-a"


# -- upload requests ------------------------------------------------------------------------
def test_upload_requests_of_a_site_that_is_not_the_jobs_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sp = shell(tmp_path, ("site-a", "site-c"))
    run_job(sp, sites=("site-a",))
    caplog.set_level(logging.WARNING, "fedra.server")
    sp.intake.may_upload(sp.sites["site-c"], MayUpload("g1", "j1"))
    assert "site site-c: job j1 is not one of its running jobs" in caplog.text
    assert sp.uploads.waiting() == 0


def test_upload_requests_of_a_job_whose_workflows_ended_are_refused(
    sp: ServerParent, caplog: pytest.LogCaptureFixture
) -> None:
    from fedra.core import JobStatus
    from fedra.protocol import Done

    task_out(sp, "site-a", "t1")
    sp.feed(JobDone("j1", JobStatus.FINISHED_COMPLETED, Done("FINISHED:COMPLETED")))
    caplog.set_level(logging.WARNING, "fedra.server")
    sp.intake.may_upload(sp.sites["site-a"], MayUpload("g1", "j1"))
    assert "not one of its running jobs" in caplog.text and sp.uploads.waiting() == 0


def test_an_accepted_upload_request_waits_in_one_thread(
    sp: ServerParent, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[Any, ...]] = []

    class Thread:
        def __init__(self, target: Any, args: tuple[Any, ...], daemon: bool) -> None:
            assert daemon
            self.call = (target, *args)

        def start(self) -> None:
            started.append(self.call)

    monkeypatch.setattr(intake_module.threading, "Thread", Thread)
    task_out(sp, "site-a", "t1")
    ask = MayUpload("g1", "j1")
    sp.intake.may_upload(sp.sites["site-a"], ask)
    sp.intake.may_upload(sp.sites["site-a"], MayUpload("g2", "j1"))  # waits already
    assert started == [(sp.intake.grant, sp.sites["site-a"], ask)]
    assert sp.uploads.waiting() == 1


def test_a_grant_tells_the_site_and_holds_the_slot_until_the_result_begins(
    sp: ServerParent,
) -> None:
    task_out(sp, "site-a", "t1")
    site = conn(sp, "site-a")
    site.on_send = lambda env: sp.uploads.sending("g1")  # it begins sending at once
    assert sp.uploads.request("site-a", "j1") == 0
    sp.intake.grant(sp.sites["site-a"], MayUpload("g1", "j1"))
    assert site.messages() == [UploadOk("g1")]
    assert "g1" in sp.uploads.grants()  # held until the result has been passed on
    sp.intake.result(sp.sites["site-a"], Result("j1", "t1", "train", grant="g1"), W4)
    assert sp.uploads.grants() == {}


def test_a_grant_that_cannot_be_told_is_given_back(sp: ServerParent) -> None:
    task_out(sp, "site-a", "t1")
    conn(sp, "site-a").fail = True
    assert sp.uploads.request("site-a", "j1") == 0
    sp.intake.grant(sp.sites["site-a"], MayUpload("g1", "j1"))
    assert sp.uploads.grants() == {} and sp.uploads.waiting() == 0


def test_a_grant_for_a_site_that_left_while_it_waited_is_never_given(sp: ServerParent) -> None:
    task_out(sp, "site-a", "t1")
    site = conn(sp, "site-a")
    site.closed = True
    assert sp.uploads.request("site-a", "j1") == 0
    sp.intake.grant(sp.sites["site-a"], MayUpload("g1", "j1"))
    assert site.sent == [] and sp.uploads.grants() == {} and sp.uploads.waiting() == 0


def test_a_site_that_leaves_after_its_grant_keeps_it_until_it_is_freed(
    sp: ServerParent,
) -> None:
    from fedra.runtime.routing import SiteLeft

    task_out(sp, "site-a", "t1")
    site = conn(sp, "site-a")

    def gone(env: Envelope) -> None:
        site.closed = True

    site.on_send = gone
    assert sp.uploads.request("site-a", "j1") == 0
    sp.intake.grant(sp.sites["site-a"], MayUpload("g1", "j1"))  # returns: the site is gone
    assert "g1" in sp.uploads.grants()
    sp.feed(SiteLeft("site-a"))  # its reader ends: the router frees its uploads
    assert sp.uploads.grants() == {}


def test_a_grant_withdrawn_for_silence_frees_the_slot_for_the_next_site(
    sp: ServerParent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "GRANT_START_S", -1.0)  # past its deadline at once
    task_out(sp, "site-a", "t1")
    task_out(sp, "site-b", "t2")
    assert sp.uploads.request("site-a", "j1") == 0
    sp.intake.grant(sp.sites["site-a"], MayUpload("g1", "j1"))
    assert sp.uploads.grants() == {}
    assert sp.uploads.request("site-b", "j1") == 0
    assert sp.uploads.wait_grant("site-b", "j1", "g2", lambda: False, poll=0.0)


def test_a_small_message_is_not_gated(sp: ServerParent) -> None:
    head = prepare_envelope(encode(Log("j1", "loss", 1.0))).head
    assert sp._receive_gate(len(head), head, "site-a") is None


def test_a_big_result_of_a_site_is_checked_before_it_waits_for_a_slot(sp: ServerParent) -> None:
    big = FLModel(params={"w": np.zeros(1 << 19, np.float32)})
    task_out(sp, "site-a", "t1", big)
    wrong = prepare_envelope(encode(Result("j1", "t9", "train"), big))
    with pytest.raises(MessageRefused, match="not outstanding"):
        sp._receive_gate(wrong.nbytes, wrong.head, "site-a")
    good = prepare_envelope(encode(Result("j1", "t1", "train"), big))
    slot = sp._receive_gate(good.nbytes, good.head, "site-a")
    assert slot is sp.uploads.gate_slot("j1", None)  # admitted: it waits for its job's slot


@pytest.mark.parametrize(
    ("count", "worth"),
    [
        (1, True),
        (2, False),
        (9, False),
        (10, True),
        (11, False),
        (20, False),
        (100, True),
        (110, False),
        (1000, True),
        (1010, False),
    ],
)
def test_a_flood_of_refusals_gets_a_few_lines(count: int, worth: bool) -> None:
    assert _worth_a_line(count) is worth
