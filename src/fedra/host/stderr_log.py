"""A parent process's standard error goes to its ``log.txt``, one log line per line.

gRPC's C core writes to file descriptor 2, not through Python's logging: among other things
one line per refused TLS handshake (a client certificate from another CA, none at all, not TLS)
that named neither the peer nor anything a reader of ``log.txt`` would see. So does Python for
uncaught exceptions in threads. :func:`capture_stderr` points descriptor 2 at a pipe; a thread
turns each line into a log record:

- a refused TLS handshake (a connection closed before it sent anything is a port probe, not
  logged) becomes one WARNING of ``fedra.tls``: ``refused a TLS connection
  from 127.0.0.1:50412: CERTIFICATE_VERIFY_FAILED (unable to get local issuer certificate)``.
  The peer's address comes from gRPC's ``handshaker`` trace, which gRPC reads from the
  environment variable ``GRPC_TRACE`` once, when it is imported: importing this module in a
  server or site parent (``python -m fedra.runtime.server_parent`` / ``site_parent``) before
  gRPC is imported turns it on; the other trace lines are dropped. Without it the line says
  ``from an unknown address``.
- other gRPC lines keep their level (logger ``grpc``); any other line is a WARNING of
  ``fedra.stderr``.

Repeated lines are rate-limited so that a flood of bad handshakes cannot flood the log: at
most :data:`HANDSHAKES_PER_WINDOW` lines per peer host and reason, and :data:`LINES_PER_WINDOW`
other lines, per :data:`WINDOW` seconds; the number left out is logged when the window ends.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: Seconds over which repeated lines are counted.
WINDOW = 60.0
#: Lines logged per window for one peer host and one reason of a refused handshake.
HANDSHAKES_PER_WINDOW = 3
#: Other standard-error lines logged per window.
LINES_PER_WINDOW = 200
#: Distinct (host, reason) keys tracked; beyond, further hosts share one key.
MAX_KEYS = 256
#: Seconds a refused handshake waits for the trace line that names its peer.
PEER_WAIT = 2.0

#: The processes that trace handshakes to log the peer's address.
PARENT_MODULES = ("fedra.runtime.server_parent", "fedra.runtime.site_parent")

_GLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+(\d+) ([\w.+-]+):\d+\] ?(.*)$")
_PEER = re.compile(r"peer_address=(?:ipv4:|ipv6:)?([^,}\s]+)")
_SSL_REASON = re.compile(r"OPENSSL_internal:([A-Z0-9_]+)(?::\s*(.*))?")
#: gRPC sources whose INFO lines are the handshaker trace (dropped once parsed).
_TRACE_SOURCES = ("handshaker.cc", "channel_trace.h", "trace.cc")
#: Continuation lines of gRPC's multi-line status messages.
_CONTINUATIONS = ("=== Source Location Trace", "src/core/", " shutdown=")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}

tls_log = logging.getLogger("fedra.tls")
grpc_log = logging.getLogger("grpc")
stderr_log = logging.getLogger("fedra.stderr")


def _main_module() -> str | None:
    """The module this interpreter was started with (``python -m MODULE``), if any."""
    argv = list(getattr(sys, "orig_argv", []))
    return argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None


def _trace_handshakes() -> bool:
    """Turn on gRPC's handshaker trace in a parent process, if gRPC is not imported yet."""
    if _main_module() not in PARENT_MODULES or "grpc" in sys.modules:
        return False
    flags = os.environ.get("GRPC_TRACE", "")
    _saved_trace.append(flags)
    os.environ["GRPC_TRACE"] = f"{flags},handshaker" if flags else "handshaker"
    return True


_saved_trace: list[str] = []
#: Whether this process traces handshakes (set at import: gRPC reads GRPC_TRACE only once).
TRACING = _trace_handshakes()


@dataclass
class _Count:
    start: float
    logged: int = 0
    left_out: int = 0


class Throttle:
    """At most ``per_window`` admissions per key per ``window`` seconds; counts the rest."""

    def __init__(self, per_window: int, window: float = WINDOW, max_keys: int = MAX_KEYS) -> None:
        self.per_window = per_window
        self.window = window
        self.max_keys = max_keys
        self._counts: dict[Hashable, _Count] = {}

    def key(self, key: Hashable, now: float) -> Hashable:
        """``key``, or the shared overflow key once :attr:`max_keys` keys are live."""
        if key in self._counts or len(self._counts) < self.max_keys:
            return key
        self.expired(now)
        return key if len(self._counts) < self.max_keys else "(other)"

    def admit(self, key: Hashable, now: float) -> bool:
        """Whether to log a line with ``key`` now (otherwise it is counted as left out)."""
        count = self._counts.get(key)
        if count is None or now - count.start >= self.window:
            count = self._counts[key] = _Count(now)
        if count.logged < self.per_window:
            count.logged += 1
            return True
        count.left_out += 1
        return False

    def expired(self, now: float) -> list[tuple[Hashable, int]]:
        """Forget the keys whose window ended; those with lines left out, and how many."""
        done = [k for k, c in self._counts.items() if now - c.start >= self.window]
        left = [(k, self._counts[k].left_out) for k in done if self._counts[k].left_out]
        for k in done:
            del self._counts[k]
        return left


def _reason(message: str) -> str:
    """The short reason of a failed handshake, e.g. ``CERTIFICATE_VERIFY_FAILED (...)``."""
    message = message.split(" shutdown=", maxsplit=1)[0].split(", args=", maxsplit=1)[0]
    found = _SSL_REASON.search(message)
    if found:
        code, detail = found.group(1), (found.group(2) or "").strip().removesuffix(": OK")
        return f"{code} ({detail})" if detail else code
    if "error=" in message:
        message = message.split("error=", 1)[1]
    return message.strip() or "handshake failed"


@dataclass
class _Waiting:
    reason: str
    since: float


class StderrLines:
    """Turns standard-error lines into log records (see the module docstring)."""

    def __init__(self, tracing: bool) -> None:
        self.tracing = tracing
        self._handshakes = Throttle(HANDSHAKES_PER_WINDOW)
        self._lines = Throttle(LINES_PER_WINDOW)
        self._ssl_failed: dict[str, _Waiting] = {}  # by gRPC thread id, until its trace
        self._awaiting_peer: _Waiting | None = None  # a trace record whose args follow

    def feed(self, line: str, now: float) -> None:
        """One line (without its newline)."""
        glog = _GLOG.match(line)
        if glog is None:
            self._plain(line, now)
            return
        level, thread, source, message = glog.groups()
        if source.startswith("ssl_transport_security") and "Handshake failed" in message:
            if self.tracing:
                self._ssl_failed[thread] = _Waiting(_reason(message), now)
            else:
                self.refused(None, _reason(message), now)
        elif source == "handshaker.cc" and "CallNextHandshakerLocked: error=" in message:
            if "error=OK" in message:
                return
            earlier = self._ssl_failed.pop(thread, None)
            if earlier is None and "Socket closed" in message:
                return  # connected and closed before any TLS: a port probe, not a refusal
            reason = earlier.reason if earlier is not None else _reason(message)
            peer = _PEER.search(message)
            if peer is not None:
                self.refused(peer.group(1), reason, now)
            else:
                self._flush_awaiting()
                self._awaiting_peer = _Waiting(reason, now)
        elif level == "I" and source in _TRACE_SOURCES:
            return
        elif self._lines.admit("grpc", now):
            grpc_log.log(_LEVELS[level], "%s", f"{source}: {message}")

    def _plain(self, line: str, now: float) -> None:
        if self._awaiting_peer is not None:
            peer = _PEER.search(line)
            if peer is not None:
                self.refused(peer.group(1), self._awaiting_peer.reason, now)
                self._awaiting_peer = None
                return
        if not line.strip() or line.startswith(_CONTINUATIONS):
            return
        if self._lines.admit("stderr", now):
            stderr_log.warning("%s", line)

    def refused(self, peer: str | None, reason: str, now: float) -> None:
        """Log one refused TLS handshake (rate-limited per peer host and reason)."""
        host = peer.rsplit(":", 1)[0] if peer else None
        key = self._handshakes.key((host, reason.split(" (", maxsplit=1)[0]), now)
        if self._handshakes.admit(key, now):
            tls_log.warning(
                "refused a TLS connection from %s: %s", peer or "an unknown address", reason
            )

    def _flush_awaiting(self) -> None:
        if self._awaiting_peer is not None:
            waiting, self._awaiting_peer = self._awaiting_peer, None
            self.refused(None, waiting.reason, waiting.since)

    def tick(self, now: float) -> None:
        """Log what waited too long for its peer, and the counts of lines left out."""
        for thread, waiting in list(self._ssl_failed.items()):
            if now - waiting.since >= PEER_WAIT:
                del self._ssl_failed[thread]
                self.refused(None, waiting.reason, now)
        if self._awaiting_peer is not None and now - self._awaiting_peer.since >= PEER_WAIT:
            self._flush_awaiting()
        for key, count in self._handshakes.expired(now):
            host, reason = key if isinstance(key, tuple) else ("other hosts", key)
            tls_log.warning(
                "refused %d more TLS connections from %s (%s) in the last %.0f s",
                count,
                host or "unknown addresses",
                reason,
                self._handshakes.window,
            )
        for key, count in self._lines.expired(now):
            stderr_log.warning("%d more lines of standard error (%s) were not logged", count, key)


def _pump(fd: int, lines: StderrLines, clock: Callable[[], float]) -> None:
    """Read ``fd`` until end of file, feeding each line to ``lines``."""
    pending = b""
    while True:
        readable, _, _ = select.select([fd], [], [], 1.0)
        chunk = os.read(fd, 1 << 16) if readable else b""
        if readable and not chunk:
            break
        *complete, pending = (pending + chunk).split(b"\n")
        if len(pending) > 1 << 16:  # a line without end: log what came so far
            complete.append(pending)
            pending = b""
        now = clock()
        for raw in complete:
            with contextlib.suppress(Exception):  # never let one line end the thread
                lines.feed(raw.decode("utf-8", "replace").rstrip("\r"), now)
        with contextlib.suppress(Exception):
            lines.tick(now)
    with contextlib.suppress(Exception):
        if pending:
            lines.feed(pending.decode("utf-8", "replace"), clock())
        lines.tick(float("inf"))
    os.close(fd)


def capture_stderr() -> None:
    """Send this process's file descriptor 2 to its logging, from now until it exits.

    Call once logging goes to ``log.txt``. The variable ``GRPC_TRACE`` is put back as it was
    (gRPC read it already), so that the processes this one starts do not trace.
    """
    if _saved_trace:
        flags = _saved_trace.pop()
        if flags:
            os.environ["GRPC_TRACE"] = flags
        else:
            os.environ.pop("GRPC_TRACE", None)
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # room for bursts while the thread catches up
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1 << 20)
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(
        target=_pump,
        args=(read_end, StderrLines(TRACING), time.monotonic),
        name="fedra-stderr",
        daemon=True,
    )
    thread.start()

    def restore() -> None:
        """At exit: descriptor 2 back to where it was; the thread logs what is left."""
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        thread.join(5.0)

    atexit.register(restore)
