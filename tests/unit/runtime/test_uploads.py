"""The upload slots of the server parent (:class:`UploadSlots`): one results slot per running
job, one stray slot, grants that hold a slot until they end, repeated requests counted; and,
over random sequences (hypothesis), every slot is free again once its grants are gone."""

from __future__ import annotations

import threading

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fedra.runtime.uploads import Grant, UploadSlots


def granted(slots: UploadSlots, site: str, job_id: str, grant_id: str) -> bool:
    """Request and (without waiting) take a grant; False when refused or the slot is held."""
    if slots.request(site, job_id) != 0:
        return False
    calls = iter([False, True])  # not gone at the first look; gone once the slot is held
    return slots.wait_grant(site, job_id, grant_id, lambda: next(calls, True), poll=0.0)


def free(slot: threading.Semaphore | None) -> bool:
    """Whether ``slot`` can be taken now (it is given back at once)."""
    assert slot is not None
    if not slot.acquire(blocking=False):
        return False
    slot.release()
    return True


# -- slots ----------------------------------------------------------------------------------
def test_each_running_job_has_its_own_slot() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    slots.open_job("j2")
    one, two = slots.gate_slot("j1", None), slots.gate_slot("j2", None)
    assert one is not None and two is not None and one is not two
    assert slots.gate_slot(None, None) not in (one, two)  # the stray slot


def test_opening_a_job_twice_keeps_its_slot_and_its_grant() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    slots.open_job("j1")
    assert not free(slots.gate_slot("j1", None))  # still held by g1
    assert set(slots.grants()) == {"g1"}


def test_big_results_naming_no_running_job_share_one_stray_slot() -> None:
    slots = UploadSlots()
    stray = slots.gate_slot("nothing-such", None)
    assert stray is not None
    assert slots.gate_slot(None, None) is stray
    assert slots.gate_slot("other", "forged-grant") is stray
    slots.open_job("j1")
    slots.close_job("j1")
    assert slots.gate_slot("j1", None) is stray  # an ended job's results are strays


def test_a_live_grant_skips_the_gate_only_while_its_job_runs() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    assert slots.gate_slot("j1", "g1") is None
    assert slots.gate_slot("other-job", "g1") is None  # the grant, not the job, lets it in
    slots.close_job("j1")
    assert slots.gate_slot("j1", "g1") is slots.gate_slot(None, None)


# -- requests -------------------------------------------------------------------------------
def test_repeated_requests_are_counted_per_site_and_job() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    slots.open_job("j2")
    assert slots.request("a", "j1") == 0
    assert [slots.request("a", "j1") for _ in range(3)] == [1, 2, 3]
    assert slots.request("b", "j1") == 0  # another site waits on its own
    assert slots.request("a", "j2") == 0  # another job of the same site too
    assert slots.waiting() == 3


def test_a_request_for_a_job_that_does_not_run_is_refused_and_counted() -> None:
    slots = UploadSlots()
    assert slots.request("a", "j1") == 1
    assert slots.request("a", "j1") == 2
    assert slots.waiting() == 0


def test_a_job_that_ends_forgets_its_counts() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    slots.request("a", "j1")
    assert slots.request("a", "j1") == 1
    slots.close_job("j1")
    slots.open_job("j1")  # (resumed)
    assert not granted(slots, "a", "j1", "g1")  # the first request still waits
    slots.close_job("j1")
    assert slots.request("a", "j1") == 1  # counted from one again, not from three


def test_a_site_may_ask_again_once_its_grant_has_ended() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    assert slots.request("a", "j1") == 1  # holds one
    slots.end("g1")
    assert granted(slots, "a", "j1", "g2")
    assert slots.grants() == {"g2": Grant("a", "j1")}


# -- waiting for a grant --------------------------------------------------------------------
def test_a_request_whose_site_is_gone_gives_up_without_the_slot() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert slots.request("a", "j1") == 0
    assert not slots.wait_grant("a", "j1", "g1", lambda: True)
    assert slots.waiting() == 0 and slots.grants() == {}
    assert free(slots.gate_slot("j1", None))


def test_a_request_whose_job_ended_before_it_waited_gives_up() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert slots.request("a", "j1") == 0
    slots.close_job("j1")
    assert not slots.wait_grant("a", "j1", "g1", lambda: False)
    assert slots.waiting() == 0 and slots.grants() == {}


def test_a_slot_taken_after_its_job_ended_is_given_back() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    old = slots.gate_slot("j1", None)
    assert slots.request("a", "j1") == 0

    def job_restarts() -> bool:  # between the look at the slot and taking it
        slots.close_job("j1")
        slots.open_job("j1")
        return False

    assert not slots.wait_grant("a", "j1", "g1", job_restarts)
    assert slots.grants() == {} and slots.waiting() == 0
    assert free(old)  # the old slot was given back
    assert free(slots.gate_slot("j1", None))  # and the new one never taken


def test_a_waiting_request_is_counted_until_it_ends() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    assert slots.request("b", "j1") == 0
    assert slots.waiting() == 1
    assert slots.request("b", "j1") == 1  # waits already
    assert not slots.wait_grant("b", "j1", "g2", lambda: True)
    assert slots.waiting() == 0


# -- a grant's life -------------------------------------------------------------------------
def test_a_grant_is_live_until_its_result_begins() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    assert slots.live("g1")
    slots.sending("g1")
    assert not slots.live("g1")
    assert "g1" in slots.grants() and not free(slots.gate_slot("j1", None))  # still held
    slots.end("g1")
    assert free(slots.gate_slot("j1", None))


def test_sending_under_an_unknown_grant_marks_nothing() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    slots.sending("g1")  # not granted (yet): nothing to mark
    assert granted(slots, "a", "j1", "g1")
    assert slots.live("g1")  # a later grant of that id is not taken for begun


def test_an_ended_grant_forgets_that_it_was_sending() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    slots.sending("g1")
    slots.end("g1")
    assert granted(slots, "a", "j1", "g1")  # the same id again
    assert slots.live("g1")


def test_ending_a_site_frees_only_its_grants_of_that_job() -> None:
    slots = UploadSlots()
    for job in ("j1", "j2"):
        slots.open_job(job)
    assert granted(slots, "a", "j1", "a1")
    assert granted(slots, "a", "j2", "a2")
    slots.end_site("a", "j1")
    assert set(slots.grants()) == {"a2"}
    assert free(slots.gate_slot("j1", None)) and not free(slots.gate_slot("j2", None))
    slots.end_site("b")  # holds nothing
    assert set(slots.grants()) == {"a2"}
    slots.end_site("a")
    assert slots.grants() == {} and free(slots.gate_slot("j2", None))


def test_ending_a_job_frees_only_its_grants() -> None:
    slots = UploadSlots()
    for job in ("j1", "j2"):
        slots.open_job(job)
    assert granted(slots, "a", "j1", "g1")
    assert granted(slots, "b", "j2", "g2")
    slots.sending("g1")
    slots.close_job("j1")
    assert set(slots.grants()) == {"g2"} and not free(slots.gate_slot("j2", None))
    assert not slots.live("g1")


def test_a_grant_is_refused_while_another_holds_the_slot() -> None:
    slots = UploadSlots()
    slots.open_job("j1")
    assert granted(slots, "a", "j1", "g1")
    assert not granted(slots, "b", "j1", "g2")  # gave up waiting: the slot is g1's
    assert set(slots.grants()) == {"g1"} and slots.waiting() == 0


# -- every slot freed (random sequences) ----------------------------------------------------
JOBS = ("j1", "j2")
SITES = ("a", "b", "c")


class SlotLife(RuleBasedStateMachine):
    """Jobs open and close, sites ask, get, use and lose grants: a job's slot is held exactly
    while one of its grants is, and is never given back twice."""

    def __init__(self) -> None:
        super().__init__()
        self.slots = UploadSlots()
        self.open: set[str] = set()
        self.grants: dict[str, Grant] = {}
        self.serial = 0

    @rule(job=st.sampled_from(JOBS))
    def open_job(self, job: str) -> None:
        self.slots.open_job(job)
        self.open.add(job)

    @rule(job=st.sampled_from(JOBS))
    def close_job(self, job: str) -> None:
        self.slots.close_job(job)
        self.open.discard(job)
        self.grants = {g: x for g, x in self.grants.items() if x.job_id != job}

    @rule(site=st.sampled_from(SITES), job=st.sampled_from(JOBS))
    def ask(self, site: str, job: str) -> None:
        self.serial += 1
        grant_id = f"g{self.serial}"
        holds = Grant(site, job) in self.grants.values()
        slot_taken = any(x.job_id == job for x in self.grants.values())
        ok = granted(self.slots, site, job, grant_id)
        assert ok == (job in self.open and not holds and not slot_taken)
        if ok:
            self.grants[grant_id] = Grant(site, job)

    @precondition(lambda self: self.grants)
    @rule(data=st.data())
    def begin(self, data: st.DataObject) -> None:
        self.slots.sending(data.draw(st.sampled_from(sorted(self.grants))))

    @rule(data=st.data(), stale=st.booleans())
    def end(self, data: st.DataObject, stale: bool) -> None:
        if stale or not self.grants:
            self.slots.end("g0")  # never granted (or spent): a no-op
            return
        grant_id = data.draw(st.sampled_from(sorted(self.grants)))
        self.slots.end(grant_id)
        del self.grants[grant_id]

    @rule(site=st.sampled_from(SITES), job=st.sampled_from((None, *JOBS)))
    def site_gone(self, site: str, job: str | None) -> None:
        self.slots.end_site(site, job)
        self.grants = {
            g: x for g, x in self.grants.items() if not (x.site == site and job in (None, x.job_id))
        }

    @invariant()
    def grants_are_as_given(self) -> None:
        assert self.slots.grants() == self.grants
        assert self.slots.waiting() == 0

    @invariant()
    def a_slot_is_held_exactly_while_a_grant_holds_it(self) -> None:
        for job in self.open:
            slot = self.slots.gate_slot(job, None)
            assert slot is not None
            held = any(x.job_id == job for x in self.grants.values())
            assert free(slot) != held
            if not held:  # released once only: one taker, not two
                assert slot.acquire(blocking=False)
                assert not slot.acquire(blocking=False)
                slot.release()

    @invariant()
    def the_stray_slot_is_free(self) -> None:
        assert free(self.slots.gate_slot(None, None))


SlotLife.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)
test_slot_life = SlotLife.TestCase
