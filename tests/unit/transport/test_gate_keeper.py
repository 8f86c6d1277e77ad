"""The gate keeper of a framed connection, without a network: which slot each message holds,
and that every slot comes back however the connection ends."""

from __future__ import annotations

import threading

import pytest
from transport_helpers import Worker

from fedra.transport import MessageRefused
from fedra.transport._gate import GateKeeper


def keeper_with(slot: threading.Semaphore, stopped: threading.Event) -> GateKeeper:
    keeper = GateKeeper(stopped.is_set)

    def gate(total: int, head: bytes) -> threading.Semaphore | None:
        if head == b"bad":
            raise MessageRefused("not this one")
        return slot if total > 100 else None

    keeper.gate = gate
    return keeper


def test_a_slot_is_held_from_the_head_until_the_next_message_is_asked_for() -> None:
    slot, stopped = threading.Semaphore(1), threading.Event()
    keeper = keeper_with(slot, stopped)
    assert keeper.admit(1000, b"big")  # the reader takes the slot at the head
    assert not slot.acquire(blocking=False)
    keeper.begin()
    keeper.end()  # received: still held while the receiver handles it
    assert not slot.acquire(blocking=False)
    keeper.release_handled()  # the next recv began
    assert slot.acquire(blocking=False)
    slot.release()
    assert keeper.admit(10, b"small")  # no slot needed
    keeper.begin()
    keeper.end()
    keeper.release_handled()
    with pytest.raises(MessageRefused):
        keeper.admit(1000, b"bad")
    assert slot.acquire(blocking=False)  # a refused message took nothing


class BusySlot:
    """A slot that is never free; says when the reader began to wait for it."""

    def __init__(self) -> None:
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if blocking:
            self.waiting.set()
            threading.Event().wait(timeout)  # a slot that stays busy for ``timeout``
        return False

    def release(self) -> None:
        raise AssertionError("a slot never taken was given back")


def test_a_reader_waiting_at_the_gate_is_held_back_and_stops_when_the_connection_ends() -> None:
    slot, stopped = BusySlot(), threading.Event()
    keeper = GateKeeper(stopped.is_set)
    keeper.gate = lambda total, head: slot
    waiting = Worker(lambda: keeper.admit(1000, b"big"))
    assert slot.waiting.wait(10)
    assert keeper.held_back  # the peer is not silent while its message waits here
    stopped.set()
    assert waiting.join() is False
    assert not keeper.held_back


def test_every_slot_comes_back_when_the_connection_ends() -> None:
    slot, stopped = threading.Semaphore(3), threading.Event()
    keeper = keeper_with(slot, stopped)
    assert keeper.admit(1000, b"a")
    keeper.begin()
    keeper.end()  # handled
    assert keeper.admit(1000, b"b")
    keeper.begin()  # being received
    assert keeper.admit(1000, b"c")  # admitted, not begun
    keeper.release_all()
    assert [slot.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]
    slot.release(3)
    assert keeper.admit(1000, b"d") is False  # nothing is admitted after the end
    assert [slot.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]
