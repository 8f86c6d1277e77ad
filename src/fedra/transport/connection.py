"""The interface every transport offers: a connection that carries envelopes both ways."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from fedra.wire import Envelope

if TYPE_CHECKING:
    from fedra.transport._stream import SharedBody

#: Chooses, from an incoming message's size and first bytes (its first frame's data), the
#: semaphore to hold while that message is received and handled; None lets it in at once.
#: It may raise :class:`~fedra.transport.errors.MessageRefused`: the message is then dropped.
ReceiveGate = Callable[[int, bytes], "threading.Semaphore | None"]
#: Judges an incoming message from its declared size and first bytes (its first frame's data)
#: before anything more of it is read: why it is refused, or None to let it in.
MessageCheck = Callable[[int, bytes], "str | None"]


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

    @property
    def last_heard(self) -> float:
        """``time.monotonic()`` of the last sign of life from the peer that the transport saw.

        A transport that holds messages back at a receive gate counts the time waiting there
        as heard (the peer is not silent; this side does not read it). 0.0 when the transport
        does not track it (the default).
        """
        return 0.0

    def send_shared(self, envelope: Envelope, body: SharedBody) -> None:
        """Send ``envelope``, whose model's body ``body`` frames once for several connections.

        Same contract as :meth:`send`; counts as one reader of ``body`` whatever happens.
        Transports that do not send in frames just send the envelope (the default).
        """
        body.leave()
        self.send(envelope)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until what was sent has left this side's queues (the network's own buffers
        aside); False after ``timeout`` seconds. Transports without queues return at once."""
        del timeout
        return True

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

    def set_receive_gate(self, gate: ReceiveGate | None) -> None:
        """Hold incoming messages back until ``gate`` admits them (set before traffic starts).

        A transport that receives in frames asks ``gate`` at the first frame of each message
        and stops reading the stream until the semaphore it names is acquired; the semaphore
        is released when the next ``recv`` begins or the connection ends, so a slot covers
        the message while its receiver handles it. The peer is held back by flow control, and
        only the frames already read wait in this process. A gate that raises MessageRefused
        refuses the message from its head: its frames are read and dropped, ``recv`` never
        sees it, and the connection goes on. Transports that hold nothing in frames ignore it
        (the default).
        """
        del gate

    def set_message_check(self, check: MessageCheck | None) -> None:
        """Judge each incoming message by ``check`` before it is buffered (set before traffic).

        A transport that receives in frames asks ``check`` at the first frame of each message
        (its declared size and first bytes); a refusal ends the connection at once with that
        reason, so the peer's message is never buffered. Transports that deliver messages
        whole ignore it (the default).
        """
        del check

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
