"""SIGTERM stops a simulation the way Ctrl-C does.

``kill PID`` (or a batch scheduler ending the job) must leave what Ctrl-C leaves: the run
aborted, the sites stopped, ``summary.json`` written with ``FINISHED:ABORTED``. While a
simulation runs in the main thread, :func:`sigterm_as_interrupt` turns SIGTERM into
:class:`Terminated`, a ``KeyboardInterrupt``, so both signals take the same path.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM."""


def interrupt_reason(exc: KeyboardInterrupt) -> str:
    """Why the run stopped, for its history and summary: ``interrupted (SIGTERM)`` or
    ``interrupted (Ctrl-C)``."""
    return "interrupted (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread.

    Only where SIGTERM still has its default action (a program's own handler is left alone)
    and only in the main thread (the only one that may set handlers); restored after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
