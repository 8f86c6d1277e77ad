"""A framed message channel over a connected stream socket, between a parent and its child.

Each message is an 8-byte little-endian length followed by one :mod:`fedra.wire` frame. Arrays
are sent straight from their memory and received into one buffer that the decoded arrays view,
so a message is never copied whole on either side.

Big messages need not pass through memory at all:

* a channel with a :class:`~fedra.transport.spool.Spool` receives messages above its threshold
  into a nameless file and decodes them over a read-only map of it;
* a message whose tensor bytes already lie in such a file (it was received that way, or
  parked there) is sent from the file with ``sendfile`` (the kernel copies, this process maps
  nothing), or, by a parent to its child (``pass_files``), not sent at all: the child gets a
  read-only descriptor of the file over the socket (``SCM_RIGHTS``) and maps it. Only a parent
  hands files to its child (``accept_files`` on the child's end): a process never maps a file
  that a less trusted process could still shorten under it.

A message that hands over a file is a length word with its top bit set, then the offset and
length of the frame's body in that file (two little-endian u64), then the frame's head.

A :class:`LocalChannel` is a :class:`~fedra.transport.Connection` without the optional hooks
(messages arrive whole, nothing is queued on this side): its peer is the process at the other
end of the socket, which has no certificate (:data:`LOCAL_PEER` unless the caller names it).
"""

from __future__ import annotations

import array
import contextlib
import math
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import Literal

import numpy as np

from fedra.core import WireError
from fedra.core.filemap import FileMap, file_region, map_fd
from fedra.transport.connection import Connection, PeerIdentity
from fedra.transport.errors import ChannelClosed
from fedra.transport.spool import Spool, SpoolError, readonly_fd
from fedra.wire import (
    DEFAULT_MAX_FRAME,
    MAX_HEADER_SIZE,
    Envelope,
    decode_envelope,
    decode_split,
    prepare_envelope,
)

_LENGTH = struct.Struct("<Q")
#: Top bit of the length word: the message hands over a file that holds the frame's body.
_FILE_FLAG = 1 << 63
#: Offset and length of the frame's body in a handed file.
_REGION = struct.Struct("<QQ")
#: Largest inline part of a message that hands over a file (region, then the frame's head).
_MAX_HANDED_INLINE = _REGION.size + 16 + MAX_HEADER_SIZE + 16
#: Room for the descriptors one message may carry (one; more are closed and refused).
_ANCILLARY = socket.CMSG_SPACE(4 * array.array("i").itemsize)
#: Bytes read at a time into a spooled message.
_SPOOL_CHUNK = 1 << 20
#: Pieces smaller than this are gathered into one send; larger ones are sent from their memory.
_GATHER = 64 << 10
#: Longest single wait in poll(); longer timeouts wait in several steps.
_MAX_POLL_MS = 3_600_000
#: The peer of a local channel whose caller did not name it: a process on this machine, a
#: parent or its child, trusted as such because it holds the other end of the socket.
LOCAL_PEER = PeerIdentity("local", "", "local")


class LocalChannel(Connection):
    """Envelopes over a connected stream socket (a Unix domain socket or a socketpair end).

    ``send`` may be called from several threads at once, and so may ``recv``; one thread may
    send while another receives. The channel owns the socket and closes it in :meth:`close`.

    ``spool``: receive big messages into files there. ``pass_files``: hand file-backed bodies
    to the peer as descriptors (a parent, to its child). ``accept_files``: map handed files
    ``"read"``-only (arrays read-only; the process only reads them) or ``"copy"``-on-write
    (arrays writable, writes stay in this process); None refuses them. ``peer``: who is at
    the other end (:data:`LOCAL_PEER` by default).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        spool: Spool | None = None,
        pass_files: bool = False,
        accept_files: Literal["read", "copy"] | None = None,
        peer: PeerIdentity = LOCAL_PEER,
    ) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._peer = peer
        self._max_frame = max_frame
        self._spool = spool
        self._pass_files = pass_files
        self._accept_files = accept_files
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closed = False
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    @property
    def peer(self) -> PeerIdentity:
        """The process at the other end, as the caller named it."""
        return self._peer

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
        region = file_region(list(frame.body)) if frame.body else None
        with self._send_lock:
            if self._closed:
                raise ChannelClosed("send on a closed channel")
            try:
                if region is not None and self._pass_files:
                    self._hand_over(frame.head, *region)
                elif region is not None:
                    mapped, offset, length = region
                    self._sock.sendall(_LENGTH.pack(size) + frame.head)
                    self._sock.sendfile(mapped.file, offset, length)
                else:
                    self._send_parts(_LENGTH.pack(size), frame.parts())
            except OSError as err:
                self.close()
                raise ChannelClosed(f"channel broke while sending: {err}") from None

    def _send_parts(self, prefix: bytes, parts: Iterable[memoryview | bytes]) -> None:
        pending = bytearray(prefix)
        for part in parts:
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

    def _hand_over(self, head: bytes, mapped: FileMap, offset: int, length: int) -> None:
        """Send ``head`` and a read-only descriptor of the file holding the body."""
        inline = _REGION.pack(offset, length) + head
        prefix = _LENGTH.pack(_FILE_FLAG | len(inline))
        fd = readonly_fd(mapped)
        try:
            sent = socket.send_fds(self._sock, [prefix], [fd])
        finally:
            os.close(fd)  # the message in flight holds the file now
        self._sock.sendall(prefix[sent:] + inline)

    def recv(self, timeout: float | None = None) -> Envelope:
        """Receive one envelope; its arrays view a buffer owned by this message alone (a
        read-only file map for a spooled or handed-over message).

        Raises TimeoutError when no message begins within ``timeout`` seconds (the channel
        stays usable), ChannelClosed on end of stream, a message that stalls past the
        timeout or one that cannot be spooled, and WireError for a length above ``max_frame``
        or a file handed where none is accepted (the channel is then closed, before any
        buffer is allocated) or a malformed frame (the channel stays usable).
        """
        with self._recv_lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            prefix = bytearray(_LENGTH.size)
            fds: list[int] = []
            try:
                self._read_into(memoryview(prefix), deadline, first=True, fds=fds)
                (word,) = _LENGTH.unpack(prefix)
                if word & _FILE_FLAG or fds:
                    return self._recv_handed(word & ~_FILE_FLAG, fds, deadline)
            finally:
                for fd in fds:
                    os.close(fd)
            size = word
            if size > self._max_frame:
                self.close()
                raise WireError(
                    f"incoming message of {size} bytes is above the limit of {self._max_frame}; "
                    "channel closed"
                )
            if self._spool is not None and self._spool.wants(size):
                buffer = self._recv_spooled(self._spool, size, deadline)
            else:
                # Uninitialised (not zero-filled) memory: every byte is overwritten by the read.
                buffer = np.empty(size, dtype=np.uint8).data
                self._read_into(buffer, deadline, first=False)
        return decode_envelope(buffer, max_size=self._max_frame)

    def _recv_handed(self, size: int, fds: list[int], deadline: float | None) -> Envelope:
        """The rest of a message that hands over a file; ``fds`` are closed by the caller."""
        if self._accept_files is None or len(fds) != 1 or size > _MAX_HANDED_INLINE:
            self.close()
            if self._accept_files is None:
                raise WireError("the peer handed over a file, which this channel does not take")
            raise WireError(
                f"malformed file hand-over ({len(fds)} descriptors, {size} bytes inline); "
                "channel closed"
            )
        inline = bytearray(size)
        self._read_into(memoryview(inline), deadline, first=False)
        if size < _REGION.size:
            raise WireError(f"file hand-over of {size} bytes is shorter than its region")
        offset, length = _REGION.unpack_from(inline)
        try:
            mapped = map_fd(fds.pop(), readonly=self._accept_files == "read")
        except (OSError, ValueError) as err:
            raise WireError(f"cannot map the file handed over: {err}") from None
        if offset + length > len(mapped):
            raise WireError(
                f"the handed file has {len(mapped)} bytes, "
                f"the body lies at {offset}..{offset + length}"
            )
        body = memoryview(mapped)[offset : offset + length]
        return decode_split(memoryview(inline)[_REGION.size :], body, max_size=self._max_frame)

    def _recv_spooled(self, spool: Spool, size: int, deadline: float | None) -> memoryview:
        """Read a message of ``size`` bytes into a spool file; a read-only map of it."""
        try:
            spooled = spool.open(size)
        except SpoolError as err:
            self.close()
            raise ChannelClosed(f"{err}; channel closed") from None
        try:
            chunk = np.empty(min(size, _SPOOL_CHUNK), dtype=np.uint8).data
            left = size
            while left:
                part = chunk[: min(left, len(chunk))]
                self._read_into(part, deadline, first=False)
                spooled.write(part)
                left -= len(part)
            return memoryview(spooled.finish())
        except SpoolError as err:
            self.close()
            raise ChannelClosed(f"{err}; channel closed") from None
        except BaseException:
            spooled.discard()
            raise

    def _read_into(
        self,
        view: memoryview,
        deadline: float | None,
        *,
        first: bool,
        fds: list[int] | None = None,
    ) -> None:
        """Fill ``view`` from the socket; with ``fds``, collect descriptors sent with it."""
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
                if fds is None:
                    n = self._sock.recv_into(view[got:])
                else:
                    n, ancillary, _flags, _addr = self._sock.recvmsg_into([view[got:]], _ANCILLARY)
                    fds.extend(_descriptors(ancillary))
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


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The file descriptors in the ancillary data of one ``recvmsg``."""
    found: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            found.extend(fds)
    return found


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
    listener: socket.socket,
    timeout: float | None = None,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    spool: Spool | None = None,
    pass_files: bool = False,
) -> LocalChannel:
    """Accept one connection on ``listener``; raises TimeoutError after ``timeout`` seconds.

    The accepting side is the parent: it may spool and hand files to its child.
    """
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    return LocalChannel(conn, max_frame=max_frame, spool=spool, pass_files=pass_files)


def connect_unix(
    path: str | os.PathLike[str],
    timeout: float | None = None,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    accept_files: Literal["read", "copy"] | None = None,
) -> LocalChannel:
    """Connect to the Unix domain socket at ``path``; OSError if nobody listens there.

    The connecting side is the child: ``accept_files`` says how it maps files its parent hands
    over (see :class:`LocalChannel`).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
    except BaseException:
        sock.close()
        raise
    return LocalChannel(sock, max_frame=max_frame, accept_files=accept_files)
