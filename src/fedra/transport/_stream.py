"""A Connection over one gRPC bidirectional stream of Frames; shared by server and client.

Sending: :meth:`StreamConnection.send` cuts the encoded envelope into pieces of
:data:`FRAME_SIZE` bytes, copying one piece at a time straight into an encoded Frame, into a
pipe of :data:`QUEUED_FRAMES` frames that the gRPC stream drains
(:meth:`StreamConnection.outgoing`): a slow peer blocks the sender and the envelope is never
built whole. Receiving: a reader thread moves incoming frames into another bounded pipe
(:meth:`StreamConnection.pump`); ``recv`` copies them into one buffer of the size announced by
the first frame (a bytearray, allocated once the size is checked against the limit) and decodes
the envelope over that buffer without another copy. A receive gate
(:meth:`StreamConnection.set_receive_gate`) makes the reader thread wait at the first frame of a
message until the receiver may take it, so that a server relaying big messages from many
peers holds one of them at a time, not one per peer.

Frames are sent already encoded (:func:`encode_frame`, the protobuf encoding of ``Frame``) and
received as ``Frame`` messages, so a client built from the generated stub interoperates.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NoReturn

import numpy as np

from fedra.core import WireError, release_pages
from fedra.core.filemap import file_region
from fedra.transport._pipe import Pipe
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport.connection import Connection, MessageCheck, PeerIdentity, ReceiveGate
from fedra.transport.errors import ChannelClosed, MessageRefused
from fedra.transport.spool import Spool, SpoolError, SpoolFile
from fedra.wire import (
    DEFAULT_MAX_FRAME,
    EncodedFrame,
    Envelope,
    decode_envelope,
    prepare_envelope,
)

#: Bytes of envelope data in one frame (the last frame of an envelope may carry fewer). Each
#: frame is copied on its way through gRPC and a stream holds a few at a time, so with 32
#: sites 1 MiB frames cost the server about 40 MiB more than 256 KiB ones (measured with a
#: 100 MB model; rounds were faster with 32 sites on 2 cores, the same with 2 sites).
FRAME_SIZE = 1 << 18
#: Frames queued for sending before ``send`` blocks.
QUEUED_FRAMES = 4
#: Frames received and not yet taken by ``recv`` before the reader thread stops reading.
RECEIVED_FRAMES = 2
#: Default limit on the size of one envelope.
DEFAULT_MAX_MESSAGE = DEFAULT_MAX_FRAME
#: gRPC's limit on one message (one frame): up to 1 MiB of data (a peer may frame bigger
#: than this side does) plus room for its fields.
GRPC_MESSAGE_LIMIT = max(FRAME_SIZE, 1 << 20) + (64 << 10)
#: Bytes of model data in one frame of a :class:`SharedBody` (every connection's gRPC stream
#: holds its own copy of the frame it is sending).
SHARED_FRAME_SIZE = FRAME_SIZE
#: Seconds between checks for a close while the reader waits at a receive gate.
GATE_POLL_S = 0.25
#: Metadata under which a server announces its certificate to clients.
SERVER_CERT_KEY = "fedra-server-cert-bin"
#: The gRPC service and method (see ``_proto/fedra_transport.proto``).
SERVICE = "fedra.transport.v1.Fedra"
METHOD = f"/{SERVICE}/Connect"

#: gRPC channel arguments both ends use: message limits, and keepalive pings so that a dead
#: peer is noticed within about 40 s even when nothing is sent.
COMMON_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", GRPC_MESSAGE_LIMIT),
    ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_frame(data: memoryview | bytes, *, total: int, last: bool) -> bytes:
    """The protobuf encoding of ``Frame(total=total, data=data, last=last)``.

    Byte for byte what ``Frame.SerializeToString`` gives, built with a single copy of ``data``
    (building a Frame message first copies the data three times, at about 1 GB/s).
    """
    head = b""
    if total:
        head += b"\x08" + _varint(total)
    if len(data):
        head += b"\x12" + _varint(len(data))
    return b"".join((head, data, b"\x18\x01" if last else b""))


def _framed(data: memoryview | bytes, *, total: int, last: bool) -> bytes:
    """:func:`encode_frame`, then the source pages let go when they lie in a read-only file
    map (a spooled model is read once, front to back: its pages need not stay resident)."""
    frame = encode_frame(data, total=total, last=last)
    if isinstance(data, memoryview):
        release_pages(data)
    return frame


def describe_rpc_error(err: BaseException) -> str:
    """One line saying why a gRPC stream ended with ``err``."""
    code_of = getattr(err, "code", None)
    details_of = getattr(err, "details", None)
    if not callable(code_of) or not callable(details_of):
        return "the connection was cancelled or broke"
    code = code_of()
    name = getattr(code, "name", str(code))
    details = details_of() or ""
    if name == "CANCELLED":
        return (
            f"the connection was cancelled ({details})"
            if details
            else "the connection was cancelled"
        )
    if name == "UNAVAILABLE":
        return f"the network connection was lost: {details}"
    return f"the peer ended the connection with {name}: {details}"


def _head_then_body(encoded: EncodedFrame, size: int) -> Iterator[memoryview | bytes]:
    """The pieces of ``encoded``: its head in frames of its own, then its body.

    The head (prefix and header) travels apart so that a receiver learns what a message is
    from a small first frame, and so that the body's frames are the same whatever the head.
    """
    yield from EncodedFrame(head=encoded.head, body=()).chunks(size)
    if encoded.body:
        yield from EncodedFrame(head=b"", body=encoded.body).chunks(size)


class SharedBody:
    """The body (tensor bytes) of one model sent to several connections, framed once.

    Each frame is encoded when the first connection needs it and dropped once every reader
    has taken it (or left), so the readers share the frames instead of holding a copy each;
    a reader that falls behind keeps at most the frames between it and the fastest one.
    ``readers`` is the number of :meth:`StreamConnection.send_shared` calls (or
    :meth:`leave` calls, for targets that will not send) that will use it.
    """

    def __init__(self, model_envelope: Envelope, readers: int, size: int = SHARED_FRAME_SIZE):
        body = list(prepare_envelope(model_envelope).body)
        self.nbytes = sum(len(part) for part in body)
        self.count = -(-self.nbytes // size)
        self._size = size
        # A body that lies in a file (a spooled model) is framed from the file by each reader
        # on its own: frames are not kept for slower readers, whatever their number and speed.
        self._region = file_region(body) if body else None
        self._chunks = EncodedFrame(head=b"", body=body).chunks(size) if body else iter(())
        self._made = 0
        self._lock = threading.Lock()
        self._frames: dict[int, bytes] = {}
        self._left: dict[int, int] = {}  # index -> readers still to take that frame
        self._readers = readers

    def take(self, index: int) -> bytes:
        """The encoded frame ``index`` (frames are taken in order by each reader)."""
        last = index == self.count - 1
        if self._region is not None:
            mapped, offset, length = self._region
            start = offset + index * self._size
            end = offset + min(length, (index + 1) * self._size)
            return _framed(memoryview(mapped)[start:end], total=0, last=last)
        with self._lock:
            while self._made <= index:
                chunk = next(self._chunks)
                made_last = self._made == self.count - 1
                self._frames[self._made] = _framed(chunk, total=0, last=made_last)
                self._left[self._made] = self._readers
                self._made += 1
            frame = self._frames[index]
            self._drop(index)
            return frame

    def _drop(self, index: int) -> None:
        left = self._left[index] - 1
        if left:
            self._left[index] = left
        else:
            del self._left[index], self._frames[index]

    def leave(self, index: int = 0) -> None:
        """A reader stops before frame ``index``: the frames from there on wait for it no more."""
        with self._lock:
            self._readers -= 1
            for i in range(index, self._made):
                if i in self._left:
                    self._drop(i)


class StreamConnection(Connection):
    """Envelopes over a stream of frames; the gRPC glue lives in the server and client."""

    def __init__(
        self,
        peer: PeerIdentity,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        spool: Spool | None = None,
    ) -> None:
        self._peer = peer
        self._max_message = max_message
        #: Where big incoming messages are received (None: in memory).
        self._spool = spool
        self._spooled: SpoolFile | None = None
        self._out: Pipe[bytes] = Pipe(QUEUED_FRAMES, acknowledged=True)
        self._in: Pipe[pb.Frame] = Pipe(RECEIVED_FRAMES)
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._closed = False
        #: Why this side aborted the stream (a protocol error of the peer), if it did.
        self.abort_reason: str | None = None
        self._buffer: memoryview | None = None
        self._got = 0
        self._total = 0
        # Receive gate (see Connection.set_receive_gate): the reader thread appends, for each
        # message it lets in, the semaphore it acquired (or None); recv takes them in order.
        self._gate: ReceiveGate | None = None
        self._check: MessageCheck | None = None
        self._gate_lock = threading.Lock()
        self._admitted: deque[threading.Semaphore | None] = deque()
        self._receiving: threading.Semaphore | None = None
        self._handled: threading.Semaphore | None = None
        self._held_back = False
        self._last_heard = time.monotonic()

    @property
    def peer(self) -> PeerIdentity:
        """The identity of the other end, from its verified certificate."""
        return self._peer

    @property
    def closed(self) -> bool:
        """True once closed here, or once the peer's stream ended."""
        return self._closed or self._in.ended

    @property
    def max_message(self) -> int:
        """The largest envelope (encoded, in bytes) this side sends or accepts."""
        return self._max_message

    @property
    def last_heard(self) -> float:
        """When the last frame arrived, or now while a message waits at the receive gate."""
        return time.monotonic() if self._held_back else self._last_heard

    def set_receive_gate(self, gate: ReceiveGate | None) -> None:
        """See :meth:`Connection.set_receive_gate`; set it before the reader thread starts."""
        self._gate = gate

    def set_message_check(self, check: MessageCheck | None) -> None:
        """See :meth:`Connection.set_message_check`; set it before the reader thread starts."""
        self._check = check

    def send(self, envelope: Envelope) -> None:
        """Send ``envelope`` as frames; blocks while :data:`QUEUED_FRAMES` frames wait."""
        encoded = prepare_envelope(envelope)
        total = encoded.nbytes
        if total > self._max_message:
            raise WireError(f"message is {total} bytes, the connection allows {self._max_message}")
        with self._send_lock:
            if self._closed:
                raise ChannelClosed("send on a closed connection")
            sent = 0
            for chunk in _head_then_body(encoded, FRAME_SIZE):
                frame = _framed(chunk, total=0 if sent else total, last=sent + len(chunk) == total)
                sent += len(chunk)
                if not self._out.put(frame):
                    raise ChannelClosed(self._out.reason)

    def send_shared(self, envelope: Envelope, body: SharedBody) -> None:
        """Send ``envelope``, whose model's body is ``body`` (shared with other connections).

        The head is framed for this connection, the body's frames come from ``body``. Counts
        as one reader of ``body`` whatever happens (it leaves when it fails).
        """
        taken = 0
        try:
            encoded = prepare_envelope(envelope)
            if len(encoded.head) + body.nbytes != encoded.nbytes or not body.count:
                raise WireError("the shared body is not this envelope's")
            total = encoded.nbytes
            if total > self._max_message:
                raise WireError(
                    f"message is {total} bytes, the connection allows {self._max_message}"
                )
            with self._send_lock:
                if self._closed:
                    raise ChannelClosed("send on a closed connection")
                first = True
                for chunk in EncodedFrame(head=encoded.head, body=()).chunks(FRAME_SIZE):
                    frame = encode_frame(chunk, total=total if first else 0, last=False)
                    first = False
                    if not self._out.put(frame):
                        raise ChannelClosed(self._out.reason)
                del encoded
                while taken < body.count:
                    frame = body.take(taken)
                    taken += 1
                    if not self._out.put(frame):
                        raise ChannelClosed(self._out.reason)
        finally:
            if taken < body.count:
                body.leave(taken)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until gRPC has sent the frames queued by ``send`` (it asked for the frame after
        the last one), or the stream ended; False after ``timeout``."""
        return self._out.wait_empty(timeout)

    def recv(self, timeout: float | None = None) -> Envelope:
        """The next envelope; see :meth:`Connection.recv`.

        A timeout in the middle of an envelope keeps what arrived: the next ``recv`` goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._recv_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise TimeoutError("no message arrived in time")
        try:
            self._release_handled()
            while True:
                if self._closed:
                    raise ChannelClosed("recv on a closed connection")
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                frame = self._in.get(remaining)
                if frame is None:
                    self._raise_end()
                buffer = self._take(frame)
                if buffer is not None:
                    break
        finally:
            self._recv_lock.release()
        return decode_envelope(buffer, max_size=self._max_message)

    def _raise_end(self) -> NoReturn:
        if self._closed:
            raise ChannelClosed("recv on a closed connection")
        reason = self._in.reason
        self._release_gates()
        if self._buffer is not None or self._spooled is not None:
            self._drop_partial()
            raise ChannelClosed(f"{reason} in the middle of a message")
        raise ChannelClosed(reason)

    def _take(self, frame: pb.Frame) -> memoryview | None:
        """Add ``frame`` to the envelope being received; the buffer once it is complete.

        A message the spool wants goes to a file frame by frame; its buffer is then a
        read-only map of that file.
        """
        buffer = self._buffer
        if buffer is None and self._spooled is None:
            total = frame.total
            if total == 0:
                self._protocol_error("a message began without its size")
            if total > self._max_message:
                self._protocol_error(
                    f"incoming message of {total} bytes is above the limit of "
                    f"{self._max_message}; connection closed"
                )
            with self._gate_lock:
                self._receiving = self._admitted.popleft() if self._admitted else None
            self._got = 0
            self._total = total
            if self._spool is not None and self._spool.wants(total):
                try:
                    self._spooled = self._spool.open(total)
                except SpoolError as err:
                    self._local_error(str(err))
            else:
                # Uninitialised memory: every byte is overwritten by the frames that follow.
                buffer = self._buffer = np.empty(total, dtype=np.uint8).data
        elif frame.total:
            self._protocol_error("a message began before the previous one ended")
        data = frame.data
        end = self._got + len(data)
        if end > self._total:
            self._protocol_error(f"message is longer than the {self._total} bytes announced")
        if buffer is not None:
            buffer[self._got : end] = data
        else:
            assert self._spooled is not None
            try:
                self._spooled.write(data)
            except SpoolError as err:
                self._spooled = None
                self._local_error(str(err))
        self._got = end
        if not frame.last:
            return None
        if end != self._total:
            self._protocol_error(f"message ended after {end} of {self._total} bytes announced")
        if buffer is None:
            assert self._spooled is not None
            spooled, self._spooled = self._spooled, None
            try:
                buffer = memoryview(spooled.finish())
            except SpoolError as err:
                self._local_error(str(err))
        self._buffer = None
        with self._gate_lock:
            self._handled, self._receiving = self._receiving, None
        return buffer

    def _admit(self, frame: pb.Frame) -> bool:
        """Wait until the receive gate lets in the message ``frame`` begins; False if closed
        or refused by the message check (the connection is then aborted with its reason)."""
        check = self._check
        if check is not None:
            refused = check(frame.total, frame.data)
            if refused is not None:
                self._shut(abort=refused)
                return False
        gate = self._gate
        slot = None if gate is None else gate(frame.total, frame.data)
        if slot is not None and not slot.acquire(blocking=False):
            self._held_back = True
            try:
                while not slot.acquire(timeout=GATE_POLL_S):
                    if self.closed:
                        return False
            finally:
                self._last_heard = time.monotonic()
                self._held_back = False
        with self._gate_lock:
            if not self._closed:
                self._admitted.append(slot)
                return True
        if slot is not None:
            slot.release()
        return False

    def _release_handled(self) -> None:
        """The previous message has been handled: give its gate slot back."""
        with self._gate_lock:
            slot, self._handled = self._handled, None
        if slot is not None:
            slot.release()

    def _release_gates(self) -> None:
        """Give back every gate slot this connection holds (it has ended)."""
        with self._gate_lock:
            slots = [self._handled, self._receiving, *self._admitted]
            self._handled = self._receiving = None
            self._admitted.clear()
        for slot in slots:
            if slot is not None:
                slot.release()

    def _protocol_error(self, message: str) -> NoReturn:
        self._drop_partial()
        self._shut(abort=message)
        raise WireError(message)

    def _local_error(self, message: str) -> NoReturn:
        """This side cannot take the message (its spool failed): the connection ends."""
        self._drop_partial()
        self._shut(abort=message)
        raise ChannelClosed(f"{message}; connection closed")

    def _drop_partial(self) -> None:
        self._buffer = None
        spooled, self._spooled = self._spooled, None
        if spooled is not None:
            spooled.discard()

    def close(self) -> None:
        """Close; frames already queued are still sent, then the stream ends."""
        self._shut(abort=None)

    def _shut(self, *, abort: str | None) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._in.close("connection closed")
        self._release_gates()
        if abort is None:
            self._out.finish("connection closed")
        else:
            self.abort_reason = abort
            self._out.close(f"connection closed: {abort}")
        self._after_close(abort)

    def _after_close(self, abort: str | None) -> None:
        """Hook: the connection was closed here (``abort``: because the peer misbehaved)."""

    def outgoing(self) -> Iterator[bytes]:
        """The encoded frames to put on the stream, until the connection closes."""
        while (frame := self._out.get()) is not None:
            yield frame
            # gRPC asks for the next frame once it has sent this one: hold no frame while
            # waiting (else every idle stream keeps its last frame until it sends again), and
            # let drain() return (a frame gRPC still holds is memory this process still uses).
            del frame
            self._out.done()

    def pump(self, frames: Iterable[pb.Frame]) -> None:
        """Move frames from the stream into the receive pipe until the stream ends.

        Runs in a reader thread. Frames that arrive after a local close are dropped. At the
        first frame of each message it waits for the receive gate, if one is set.
        """
        reason = "the peer closed the connection"
        stream = iter(frames)
        try:
            for frame in stream:
                self._last_heard = time.monotonic()
                if frame.total:
                    try:
                        admitted = self._admit(frame)
                    except MessageRefused:
                        self._skip(frame, stream)
                        continue
                    if not admitted:
                        reason = "connection closed"
                        break
                self._in.put(frame)
                del frame  # the pipe has it: keep no frame while the stream is idle
        except Exception as err:  # grpc.RpcError, or the stream broke in another way
            reason = describe_rpc_error(err)
        finally:
            self._in.finish(reason)
            self._out.close(reason)
            self._stream_ended()

    def _skip(self, first: pb.Frame, stream: Iterator[pb.Frame]) -> None:
        """Drop the frames of a message the receive gate refused (``first`` began it)."""
        frame = first
        while not frame.last:
            following = next(stream, None)
            if following is None:
                return  # the stream ended: pump sees that
            frame = following
            self._last_heard = time.monotonic()
            if frame.total:
                self._protocol_error("a message began before the refused one ended")

    def stream_terminated(self, reason: str) -> None:
        """The stream is gone: nothing more can be sent (wakes the sending side)."""
        self._out.close(reason)

    def _stream_ended(self) -> None:
        """Hook: the incoming stream ended and the reader thread is about to exit."""
