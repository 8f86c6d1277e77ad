"""The interface every transport offers: a connection that carries envelopes both ways.

Besides ``send``/``recv``/``close``, a :class:`Connection` has four hooks that matter for
performance and flow control. Every transport accepts them; what each does depends on whether
the transport moves messages in frames (gRPC) or whole (in memory, over a local channel), and
a transport says which it supports in :attr:`Connection.capabilities`:

* :meth:`~Connection.set_gate`: judge each incoming message from its size and head before its
  body is received (hold it back, refuse it, or end the connection);
* :meth:`~Connection.send_shared`: send one model to several connections, framed once;
* :meth:`~Connection.drain`: wait until what was sent has left this side's queues;
* :attr:`~Connection.last_heard`: when the peer last showed a sign of life.

The defaults (for a transport without the capability) are documented with each hook: the gate
is not consulted, ``send_shared`` sends the envelope as ``send`` does, ``drain`` returns at
once, ``last_heard`` is 0.0 ("never": callers take the later of it and their own clock).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Protocol

from fedra.wire import Envelope


class Slot(Protocol):
    """What a gate hands out for a message to hold while it is received and handled: a
    ``threading.Semaphore`` (or anything that acquires and releases like one)."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the slot; False when not taken within ``timeout`` (or at once, not blocking)."""
        ...

    def release(self) -> None:
        """Give the slot back."""
        ...


#: Judges an incoming message from its declared size in bytes and its head (the data of its
#: first frame: the envelope's prefix and header, see :func:`fedra.wire.peek_head`), before
#: anything more of it is read. It returns None to let the message in at once, or a
#: :class:`Slot` the message must acquire first and holds while it is received and handled; or
#: it raises :class:`~fedra.transport.errors.MessageRefused` to refuse the message (skipped,
#: or the connection ended with the reason: see that exception).
Gate = Callable[[int, bytes], "Slot | None"]


class Broadcast(Protocol):
    """A model body sent to several connections at once (the gRPC transport's
    :class:`~fedra.transport.SharedBody`); each connection counts as one of its readers."""

    def leave(self, index: int = 0) -> None:
        """A reader stops before frame ``index``: the frames from there on wait for it no more."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """Which of the optional hooks of :class:`Connection` a transport really implements.

    ``gate``: :meth:`~Connection.set_gate` judges messages at their head (else it is never
    consulted: the transport delivers messages whole and bounded by its own size limit).
    ``shared_frames``: :meth:`~Connection.send_shared` frames a :class:`Broadcast` once for
    all readers (else it sends the envelope on its own). ``drain``: :meth:`~Connection.drain`
    waits for queued frames (else there are no queues and it returns True at once).
    ``last_heard``: :attr:`~Connection.last_heard` tracks the peer (else it is 0.0).
    """

    gate: bool = False
    shared_frames: bool = False
    drain: bool = False
    last_heard: bool = False


@dataclass(frozen=True)
class PeerIdentity:
    """Who is at the other end of a connection, as its certificate says it.

    ``name`` is the certificate's common name (CN), ``org`` its organization (O) and ``role``
    its organizational unit (OU). Missing attributes are empty strings. ``fingerprint``: the
    SHA-256 of the certificate (lowercase hex), for revocation; not part of equality.
    """

    name: str
    org: str
    role: str
    fingerprint: str = field(default="", compare=False, repr=False)


class Connection(ABC):
    """A connection to one peer that carries :class:`~fedra.wire.Envelope` s both ways.

    ``send`` may be called from several threads at once (envelopes are never interleaved), and
    so may ``recv``; one thread may send while another receives. Envelopes arrive in the order
    they were sent.
    """

    #: The optional hooks this transport implements (see :class:`Capabilities`).
    capabilities: ClassVar[Capabilities] = Capabilities()

    @property
    @abstractmethod
    def peer(self) -> PeerIdentity:
        """The identity of the other end (from its verified certificate on the network)."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once :meth:`close` was called here, or the peer or the network ended it.

        ``recv`` may still return envelopes that arrived before the end.
        """

    @abstractmethod
    def send(self, envelope: Envelope) -> None:
        """Send one envelope; blocks while the peer is slow (a few frames are buffered).

        Raises ChannelClosed when the connection is closed (here or by the peer, also while
        blocked), WireError when the envelope cannot be encoded or is above the size limit.
        """

    @abstractmethod
    def recv(self, timeout: float | None = None) -> Envelope:
        """The next envelope from the peer.

        Raises TimeoutError when none arrived within ``timeout`` seconds (the connection stays
        usable), ChannelClosed when the connection is closed or the peer or the network is
        gone, WireError when the peer sent something malformed.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the connection; idempotent. Blocked ``recv``/``send`` raise ChannelClosed."""

    @property
    def last_heard(self) -> float:
        """``time.monotonic()`` of the last sign of life from the peer that the transport saw.

        A transport that holds messages back at a gate counts the time waiting there as heard
        (the peer is not silent; this side does not read it). 0.0 ("never") where the
        transport does not track it (``capabilities.last_heard`` is False).
        """
        return 0.0

    def send_shared(self, envelope: Envelope, body: Broadcast) -> None:
        """Send ``envelope``, whose model's body ``body`` frames once for several connections.

        Same contract as :meth:`send`; counts as one reader of ``body`` whatever happens.
        Without ``capabilities.shared_frames`` it leaves ``body`` and sends the envelope.
        """
        body.leave()
        self.send(envelope)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until what was sent has left this side's queues (the network's own buffers
        aside); False after ``timeout`` seconds. Without ``capabilities.drain`` (no queues)
        True at once."""
        del timeout
        return True

    def set_gate(self, gate: Gate | None) -> None:
        """Judge each incoming message by ``gate`` from its head (set before traffic starts).

        With ``capabilities.gate``, the transport asks ``gate`` at the first frame of each
        message (its declared size and head), before anything more of it is read:

        * None: the message goes on at once;
        * a :class:`Slot`: the transport stops reading the stream until it acquires the
          slot (the peer is held back by flow control; only frames already read wait in this
          process), and releases it when the next ``recv`` begins or the connection ends,
          so the slot covers the message while its receiver handles it;
        * :class:`~fedra.transport.errors.MessageRefused`: the message is refused from its
          head, never buffered. Its frames are read and dropped and the connection goes on,
          or, when the exception says ``ends_connection``, the connection ends at once and
          the peer is told the reason.

        Without the capability the gate is never consulted (the default).
        """
        del gate

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
