"""The server parent's upload grants: a big result with a live grant skips the receive gate,
any other big result (a forged or spent grant, or none) waits for its job's slot."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from fedra.core import FLModel
from fedra.runtime import protocol as p
from fedra.runtime.server_parent import GATED_MESSAGE_BYTES, ServerParent
from fedra.wire import Envelope, prepare_envelope


def head(kind: str, **headers: object) -> bytes:
    model = FLModel(params={"w": np.zeros(4, np.float32)})
    return prepare_envelope(Envelope(kind, dict(headers), model)).head


def server() -> tuple[ServerParent, SimpleNamespace, SimpleNamespace]:
    sp = ServerParent.__new__(ServerParent)  # only the routing state, no ports or processes
    job = SimpleNamespace(results_gate=threading.Semaphore(1), done=False)
    sp.running = {"j1": job}  # type: ignore[dict-item]
    sp._stray_gate = threading.Semaphore(1)
    sp._granted = set()
    handle = SimpleNamespace(name="site-1", grants={}, conn=SimpleNamespace(closed=False))
    sent: list[Envelope] = []
    sp.send_to_site = lambda name, env, shared=None: sent.append(env) or True  # type: ignore[method-assign]
    handle.sent = sent
    return sp, job, handle


BIG = GATED_MESSAGE_BYTES + 1


def test_a_big_result_without_a_grant_waits_for_its_jobs_slot() -> None:
    sp, job, _ = server()
    assert sp._receive_gate(BIG, head(p.RESULT, job_id="j1")) is job.results_gate
    assert sp._receive_gate(BIG, head(p.RESULT, job_id="j1", grant="forged")) is job.results_gate
    assert sp._receive_gate(100, head(p.RESULT, job_id="j1")) is None  # small: let in


def test_a_granted_result_holds_the_slot_until_it_has_been_passed_on() -> None:
    sp, job, handle = server()
    sp._grant(handle, job, "g1")  # type: ignore[arg-type]
    assert [e.kind for e in handle.sent] == [p.UPLOAD_OK]
    assert handle.sent[0].headers == {"id": "g1"}
    assert not job.results_gate.acquire(blocking=False)  # the grant holds the slot
    assert sp._receive_gate(BIG, head(p.RESULT, job_id="j1", grant="g1")) is None
    sp._end_grant(handle, "g1")  # type: ignore[arg-type]
    assert job.results_gate.acquire(blocking=False)  # given back
    job.results_gate.release()
    sp._end_grant(handle, "g1")  # type: ignore[arg-type]  # spent: a second end is a no-op
    assert job.results_gate.acquire(blocking=False)
    assert not job.results_gate.acquire(blocking=False)  # released once only
    job.results_gate.release()
    # A spent grant does not open the gate again.
    assert sp._receive_gate(BIG, head(p.RESULT, job_id="j1", grant="g1")) is job.results_gate


def test_a_grant_for_a_site_that_left_is_given_back() -> None:
    sp, job, handle = server()
    handle.conn.closed = True
    sp._grant(handle, job, "g2")  # type: ignore[arg-type]
    assert handle.grants == {} and "g2" not in sp._granted
    assert job.results_gate.acquire(blocking=False)


def test_a_second_grant_waits_for_the_first_result() -> None:
    sp, job, handle = server()
    sp._grant(handle, job, "first")  # type: ignore[arg-type]
    other = SimpleNamespace(name="site-2", grants={}, conn=SimpleNamespace(closed=False))
    waiting = threading.Thread(target=sp._grant, args=(other, job, "second"), daemon=True)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and "second" not in sp._granted  # still waiting its turn
    sp._end_grant(handle, "first")  # type: ignore[arg-type]
    waiting.join(5.0)
    assert not waiting.is_alive() and "second" in sp._granted
