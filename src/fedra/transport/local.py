"""A framed message channel over a connected stream socket, between a parent and its child.

Each message is an 8-byte little-endian length followed by one :mod:`fedra.wire` frame. Arrays
are sent straight from their memory and received into one buffer that the decoded arrays view,
so a message is never copied whole on either side.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import struct
import threading
import time
from types import TracebackType

import numpy as np

from fedra.core import WireError
from fedra.transport.errors import ChannelClosed
from fedra.wire import DEFAULT_MAX_FRAME, Envelope, decode_envelope, prepare_envelope

_LENGTH = struct.Struct("<Q")
#: Pieces smaller than this are gathered into one send; larger ones are sent from their memory.
_GATHER = 64 << 10
#: Longest single wait in poll(); longer timeouts wait in several steps.
_MAX_POLL_MS = 3_600_000


class LocalChannel:
    """Envelopes over a connected stream socket (a Unix domain socket or a socketpair end).

    ``send`` may be called from several threads at once, and so may ``recv``; one thread may
    send while another receives. The channel owns the socket and closes it in :meth:`close`.
    """

    def __init__(self, sock: socket.socket, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._max_frame = max_frame
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closed = False
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    @property
    def max_frame(self) -> int:
        """The largest message (in bytes, without the length prefix) this side accepts."""
        return self._max_frame

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the channel broke."""
        return self._closed

    def send(self, envelope: Envelope) -> None:
        """Send one envelope; raises WireError if it cannot be encoded, ChannelClosed if closed."""
        frame = prepare_envelope(envelope)
        size = frame.nbytes
        if size > self._max_frame:
            raise WireError(f"message is {size} bytes, the channel allows {self._max_frame}")
        with self._send_lock:
            if self._closed:
                raise ChannelClosed("send on a closed channel")
            try:
                pending = bytearray(_LENGTH.pack(size))
                for part in frame.parts():
                    if len(part) < _GATHER:
                        pending += part
                        if len(pending) >= _GATHER:
                            self._sock.sendall(pending)
                            pending.clear()
                        continue
                    if pending:
                        self._sock.sendall(pending)
                        pending.clear()
                    self._sock.sendall(part)
                if pending:
                    self._sock.sendall(pending)
            except OSError as err:
                self.close()
                raise ChannelClosed(f"channel broke while sending: {err}") from None

    def recv(self, timeout: float | None = None) -> Envelope:
        """Receive one envelope; its arrays view a buffer owned by this message alone.

        Raises TimeoutError when no message begins within ``timeout`` seconds (the channel
        stays usable), ChannelClosed on end of stream or a message that stalls past the
        timeout, and WireError for a length above ``max_frame`` (the channel is then closed,
        before the buffer is allocated) or a malformed frame (the channel stays usable).
        """
        with self._recv_lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            prefix = bytearray(_LENGTH.size)
            self._read_into(memoryview(prefix), deadline, first=True)
            (size,) = _LENGTH.unpack(prefix)
            if size > self._max_frame:
                self.close()
                raise WireError(
                    f"incoming message of {size} bytes is above the limit of {self._max_frame}; "
                    "channel closed"
                )
            # Uninitialised (not zero-filled) memory: every byte is overwritten by the read.
            buffer = np.empty(size, dtype=np.uint8).data
            self._read_into(buffer, deadline, first=False)
        return decode_envelope(buffer, max_size=self._max_frame)

    def _read_into(self, view: memoryview, deadline: float | None, *, first: bool) -> None:
        got = 0
        while got < view.nbytes:
            if deadline is not None and not self._wait_readable(deadline):
                if first and got == 0:
                    raise TimeoutError("no message arrived in time")
                self.close()
                raise ChannelClosed("timed out in the middle of a message; channel closed")
            if self._closed:
                raise ChannelClosed("recv on a closed channel")
            try:
                n = self._sock.recv_into(view[got:])
            except OSError as err:
                self.close()
                raise ChannelClosed(f"channel broke while receiving: {err}") from None
            if n == 0:
                if self._closed:
                    raise ChannelClosed("recv on a closed channel")
                self.close()
                if first and got == 0:
                    raise ChannelClosed("the peer closed the channel")
                raise ChannelClosed("the peer closed the channel in the middle of a message")
            got += n

    def _wait_readable(self, deadline: float) -> bool:
        while True:
            remaining_ms = math.ceil((deadline - time.monotonic()) * 1000)
            if self._poll.poll(max(0, min(remaining_ms, _MAX_POLL_MS))):
                return True
            if remaining_ms <= _MAX_POLL_MS:
                return False

    def close(self) -> None:
        """Close the channel; blocked and later calls raise ChannelClosed. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):  # already disconnected
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def __enter__(self) -> LocalChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def listen_unix(path: str | os.PathLike[str], backlog: int = 16) -> socket.socket:
    """A listening Unix domain socket bound to ``path`` (which must not exist yet)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def accept_channel(
    listener: socket.socket, timeout: float | None = None, *, max_frame: int = DEFAULT_MAX_FRAME
) -> LocalChannel:
    """Accept one connection on ``listener``; raises TimeoutError after ``timeout`` seconds."""
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    return LocalChannel(conn, max_frame=max_frame)


def connect_unix(
    path: str | os.PathLike[str],
    timeout: float | None = None,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> LocalChannel:
    """Connect to the Unix domain socket at ``path``; OSError if nobody listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
    except BaseException:
        sock.close()
        raise
    return LocalChannel(sock, max_frame=max_frame)
