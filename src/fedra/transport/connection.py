"""The interface every transport offers: a connection that carries envelopes both ways."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from fedra.wire import Envelope


@dataclass(frozen=True)
class PeerIdentity:
    """Who is at the other end of a connection, as its certificate says it.

    ``name`` is the certificate's common name (CN), ``org`` its organization (O) and ``role``
    its organizational unit (OU). Missing attributes are empty strings.
    """

    name: str
    org: str
    role: str


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

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
