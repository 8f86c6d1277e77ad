"""A Connection over one gRPC bidirectional stream of Frames; shared by server and client.

Sending: :meth:`StreamConnection.send` cuts the encoded envelope into pieces of
:data:`FRAME_SIZE` bytes, copying one piece at a time straight into an encoded Frame, into a
pipe of :data:`QUEUED_FRAMES` frames that the gRPC stream drains
(:meth:`StreamConnection.outgoing`): a slow peer blocks the sender and the envelope is never
built whole. Receiving: a reader thread moves incoming frames into another bounded pipe
(:meth:`StreamConnection.pump`); ``recv`` copies them into one buffer of the size announced by
the first frame (a bytearray, allocated once the size is checked against the limit) and decodes
the envelope over that buffer without another copy. A gate (:meth:`Connection.set_gate`,
kept by a :class:`~fedra.transport._gate.GateKeeper`) judges each message at its first frame:
the reader thread may wait there until the receiver may take it, so that a server relaying
big messages from many peers holds one of them at a time, not one per peer, or refuse it.

Frames are sent already encoded (:mod:`fedra.transport._frames`, the protobuf encoding of
``Frame``) and received as ``Frame`` messages, so a client built from the generated stub
interoperates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import NoReturn

import numpy as np

from fedra.core import WireError
from fedra.transport._frames import FRAME_SIZE, SharedBody, encode_frame, frame_pieces, framed
from fedra.transport._gate import GateKeeper
from fedra.transport._pipe import Pipe
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport.connection import Broadcast, Capabilities, Connection, Gate, PeerIdentity
from fedra.transport.errors import ChannelClosed, MessageRefused
from fedra.transport.spool import Spool, SpoolError, SpoolFile
from fedra.wire import DEFAULT_MAX_FRAME, EncodedFrame, Envelope, decode_envelope, prepare_envelope

#: Frames queued for sending before ``send`` blocks.
QUEUED_FRAMES = 4
#: Frames received and not yet taken by ``recv`` before the reader thread stops reading.
RECEIVED_FRAMES = 2
#: Default limit on the size of one envelope.
DEFAULT_MAX_MESSAGE = DEFAULT_MAX_FRAME
#: gRPC's limit on one message (one frame): up to 1 MiB of data (a peer may frame bigger
#: than this side does) plus room for its fields.
GRPC_MESSAGE_LIMIT = max(FRAME_SIZE, 1 << 20) + (64 << 10)
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


class StreamConnection(Connection):
    """Envelopes over a stream of frames; the gRPC glue lives in the server and client."""

    capabilities = Capabilities(gate=True, shared_frames=True, drain=True, last_heard=True)

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
        self._gates = GateKeeper(lambda: self.closed)
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
        """When the last frame arrived, or now while a message waits at the gate."""
        return time.monotonic() if self._gates.held_back else self._last_heard

    def set_gate(self, gate: Gate | None) -> None:
        """See :meth:`Connection.set_gate`; set it before the reader thread starts."""
        self._gates.gate = gate

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
            for chunk in frame_pieces(encoded, FRAME_SIZE):
                frame = framed(chunk, total=0 if sent else total, last=sent + len(chunk) == total)
                sent += len(chunk)
                if not self._out.put(frame):
                    raise ChannelClosed(self._out.reason)

    def send_shared(self, envelope: Envelope, body: Broadcast) -> None:
        """Send ``envelope``, whose model's body is ``body`` (shared with other connections).

        The head is framed for this connection, the body's frames come from ``body`` (a
        :class:`~fedra.transport.SharedBody`; another broadcast is left, and the envelope
        sent on its own). Counts as one reader of ``body`` whatever happens.
        """
        if not isinstance(body, SharedBody):
            super().send_shared(envelope, body)
            return
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
            self._gates.release_handled()
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
        self._gates.release_all()
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
            self._gates.begin()
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
        self._gates.end()
        return buffer

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
        self._gates.release_all()
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
        first frame of each message it asks the gate, if one is set (see :meth:`set_gate`).
        """
        reason = "the peer closed the connection"
        stream = iter(frames)
        try:
            for frame in stream:
                self._last_heard = time.monotonic()
                if frame.total:
                    try:
                        admitted = self._gates.admit(frame.total, frame.data)
                    except MessageRefused as refused:
                        if refused.ends_connection:
                            self._shut(abort=str(refused))
                            reason = "connection closed"
                            break
                        self._skip(frame, stream)
                        continue
                    self._last_heard = time.monotonic()  # also after waiting at the gate
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
        """Drop the frames of a message the gate refused (``first`` began it)."""
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
