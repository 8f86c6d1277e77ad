"""A bounded first-in-first-out pipe between threads that can be ended or torn down."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Pipe(Generic[T]):
    """A bounded FIFO: ``put`` blocks while it is full, ``get`` while it is empty.

    :meth:`finish` ends it softly (no more puts; gets drain what is left, then see the end),
    :meth:`close` tears it down (what is left is dropped). Both wake every blocked caller and
    record a reason for whoever sees the end.

    ``acknowledged``: an item taken by ``get`` still counts for :meth:`wait_empty` until the
    taker calls :meth:`done` (it has finished with it).
    """

    def __init__(self, capacity: int, *, acknowledged: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._acknowledged = acknowledged
        self._taken = 0  # items taken and not yet done (acknowledged pipes only)
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)
        self._ended = False
        self._reason = ""

    @property
    def ended(self) -> bool:
        """True once :meth:`finish` or :meth:`close` was called."""
        return self._ended

    @property
    def reason(self) -> str:
        """Why the pipe ended (empty while it is open)."""
        return self._reason

    def put(self, item: T) -> bool:
        """Append ``item``, waiting for room; False (item dropped) once the pipe has ended."""
        with self._not_full:
            while len(self._items) >= self._capacity and not self._ended:
                self._not_full.wait()
            if self._ended:
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; None at the end. Raises TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_empty:
            while not self._items:
                if self._ended:
                    return None
                if deadline is None:
                    self._not_empty.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("nothing arrived in time")
                self._not_empty.wait(remaining)
            item = self._items.popleft()
            if self._acknowledged:
                self._taken += 1
            self._not_full.notify_all()
            return item

    def done(self) -> None:
        """The taker has finished with the oldest item it took (acknowledged pipes)."""
        with self._lock:
            self._taken = max(0, self._taken - 1)
            self._not_full.notify_all()

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until every item has been taken, and done with when the pipe is acknowledged
        (or the pipe ended); False after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_full:
            while (self._items or self._taken) and not self._ended:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._not_full.wait(remaining)
            return True

    def finish(self, reason: str) -> None:
        """End softly: no more puts, gets return what is left and then None."""
        self._end(reason, drop=False)

    def close(self, reason: str) -> None:
        """Tear down: drop what is left; every put and get from now on sees the end."""
        self._end(reason, drop=True)

    def _end(self, reason: str, *, drop: bool) -> None:
        with self._lock:
            if not self._ended:
                self._ended = True
                self._reason = reason
            if drop:
                self._items.clear()
            self._not_full.notify_all()
            self._not_empty.notify_all()
