"""The server parent's upload slots: a big result with a live grant skips the receive gate,
any other big result (a forged or spent grant, or none) waits for its job's slot."""

from __future__ import annotations

import threading

import numpy as np

from fedra.core import FLModel
from fedra.protocol import Result, encode
from fedra.runtime.server_parent import GATED_MESSAGE_BYTES
from fedra.runtime.uploads import UploadSlots
from fedra.wire import prepare_envelope
from tests.unit.runtime.conftest import routing_server


def head(grant: str | None = None, job_id: str = "j1") -> bytes:
    model = FLModel(params={"w": np.zeros(4, np.float32)})
    message = Result(job_id, "t1", "train", grant=grant)
    return prepare_envelope(encode(message, model)).head


BIG = GATED_MESSAGE_BYTES + 1


def test_a_big_result_without_a_grant_waits_for_its_jobs_slot() -> None:
    sp = routing_server()
    sp.uploads.open_job("j1")
    slot = sp._receive_gate(BIG, head())
    assert slot is not None and slot is sp.uploads.gate_slot("j1", None)
    assert sp._receive_gate(BIG, head(grant="forged")) is slot
    assert sp._receive_gate(100, head()) is None  # small: let in
    stray = sp._receive_gate(BIG, head(job_id="other"))
    assert stray is not None and stray is not slot  # no such job: the stray slot


def test_a_granted_result_holds_the_slot_until_it_has_been_passed_on() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert slots.request("site-1", "j1") == 0
    assert slots.wait_grant("site-1", "j1", "g1", lambda: False)
    slot = slots.gate_slot("j1", None)
    assert slot is not None and not slot.acquire(blocking=False)  # the grant holds it
    assert slots.gate_slot("j1", "g1") is None  # its result skips the gate
    assert slots.request("site-1", "j1") == 1  # one grant of a job per site at a time
    slots.end("g1")
    assert slot.acquire(blocking=False)  # given back
    slot.release()
    slots.end("g1")  # spent: a second end is a no-op
    assert slot.acquire(blocking=False)
    assert not slot.acquire(blocking=False)  # released once only
    slot.release()
    assert slots.gate_slot("j1", "g1") is slot  # a spent grant does not open the gate again


def test_a_grant_for_a_site_that_left_is_given_back() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    holder = slots.request("site-0", "j1") == 0 and slots.wait_grant("site-0", "j1", "g0", bool)
    assert holder
    assert slots.request("site-1", "j1") == 0
    assert not slots.wait_grant("site-1", "j1", "g2", lambda: True, poll=0.01)  # it left
    assert "g2" not in slots.grants() and slots.waiting() == 0
    slots.end_site("site-0")
    slot = slots.gate_slot("j1", None)
    assert slot is not None and slot.acquire(blocking=False)


def test_a_job_that_ends_frees_its_grants_and_refuses_new_ones() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    slots.request("site-1", "j1")
    slots.wait_grant("site-1", "j1", "g1", bool)
    slots.close_job("j1")
    assert slots.grants() == {}
    assert slots.request("site-1", "j1") == 1  # not running: refused
    assert not slots.wait_grant("site-1", "j1", "g2", bool)


def test_a_second_grant_waits_for_the_first_result() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    slots.request("site-1", "j1")
    assert slots.wait_grant("site-1", "j1", "first", bool)
    slots.request("site-2", "j1")
    waiting = threading.Thread(
        target=slots.wait_grant, args=("site-2", "j1", "second", bool, 0.05), daemon=True
    )
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and "second" not in slots.grants()  # still waiting its turn
    assert slots.waiting() == 1
    slots.end("first")
    waiting.join(5.0)
    assert not waiting.is_alive() and "second" in slots.grants()
