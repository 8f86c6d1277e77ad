"""The slots a connection's gate hands out, from the head of a message to its handling.

A :class:`GateKeeper` sits between the reader thread of a framed connection and its ``recv``:
the reader asks the gate at the first frame of each message and waits for the slot it names
(:meth:`GateKeeper.admit`); ``recv`` takes the slots over in the same order as it begins and
ends messages, and gives a message's slot back when it is asked for the next one (the
message has been handled by then) or when the connection ends.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from fedra.transport.connection import Gate, Slot

#: Seconds between checks for a close while the reader waits at a gate.
GATE_POLL_S = 0.25


class GateKeeper:
    """The gate of one connection and the slots its messages hold.

    ``stopped`` says whether the connection has ended (the reader stops waiting for a slot).
    The gate may raise :class:`~fedra.transport.errors.MessageRefused` out of :meth:`admit`.
    """

    def __init__(self, stopped: Callable[[], bool]) -> None:
        self.gate: Gate | None = None
        self._stopped = stopped
        self._lock = threading.Lock()
        self._admitted: deque[Slot | None] = deque()  # one per message let in, in order
        self._receiving: Slot | None = None
        self._handled: Slot | None = None
        self._ended = False
        #: True while the reader waits for a slot (the peer is not silent meanwhile).
        self.held_back = False

    def admit(self, total: int, head: bytes) -> bool:
        """Reader thread, first frame of a message: ask the gate, wait for the slot it names;
        False when the connection ended meanwhile (no slot is then held)."""
        gate = self.gate
        if gate is None:
            return True  # nothing to wait for, nothing to hand over: begin() finds no slot
        slot = gate(total, head)
        if slot is not None and not slot.acquire(blocking=False):
            self.held_back = True
            try:
                while not slot.acquire(timeout=GATE_POLL_S):
                    if self._stopped():
                        return False
            finally:
                self.held_back = False
        with self._lock:
            if not self._ended:
                self._admitted.append(slot)
                return True
        if slot is not None:
            slot.release()
        return False

    def begin(self) -> None:
        """``recv`` takes the first frame of a message: its slot is now the one receiving."""
        if self.gate is None:
            return
        with self._lock:
            self._receiving = self._admitted.popleft() if self._admitted else None

    def end(self) -> None:
        """``recv`` has the whole message: its slot is held until the next ``recv``."""
        if self.gate is None:
            return
        with self._lock:
            self._handled, self._receiving = self._receiving, None

    def release_handled(self) -> None:
        """The previous message has been handled: give its slot back."""
        if self._handled is None:
            return
        with self._lock:
            slot, self._handled = self._handled, None
        if slot is not None:
            slot.release()

    def release_all(self) -> None:
        """The connection has ended: give back every slot, and admit nothing more."""
        with self._lock:
            self._ended = True
            slots = [self._handled, self._receiving, *self._admitted]
            self._handled = self._receiving = None
            self._admitted.clear()
        for slot in slots:
            if slot is not None:
                slot.release()
