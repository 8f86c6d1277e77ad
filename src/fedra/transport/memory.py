"""An in-memory transport with the interface of the gRPC one, for tests and simulations.

Envelopes travel as objects (nothing is encoded or copied: the receiver gets the sender's
arrays, so a sender must not change them after ``send``) through bounded pipes of
:data:`QUEUED_ENVELOPES`, so a slow receiver blocks the sender as on the network. Identities
are whatever the caller says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fedra.core import FedraError
from fedra.transport._pipe import Pipe
from fedra.transport.connection import Connection, PeerIdentity
from fedra.transport.errors import ChannelClosed, ConnectError
from fedra.wire import Envelope

logger = logging.getLogger(__name__)

#: Envelopes buffered in each direction before ``send`` blocks.
QUEUED_ENVELOPES = 4


class MemoryConnection(Connection):
    """One end of an in-memory connection."""

    def __init__(
        self, peer: PeerIdentity, inbound: Pipe[Envelope], outbound: Pipe[Envelope]
    ) -> None:
        self._peer = peer
        self._in = inbound
        self._out = outbound
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._closed = False

    @property
    def peer(self) -> PeerIdentity:
        """The identity the other end was given."""
        return self._peer

    @property
    def closed(self) -> bool:
        """True once closed here or by the other end."""
        return self._closed or self._in.ended

    def send(self, envelope: Envelope) -> None:
        """Pass ``envelope`` to the other end; blocks while it has envelopes waiting."""
        with self._send_lock:
            if self._closed:
                raise ChannelClosed("send on a closed connection")
            if not self._out.put(envelope):
                raise ChannelClosed(self._out.reason)

    def recv(self, timeout: float | None = None) -> Envelope:
        """The next envelope; see :meth:`Connection.recv`."""
        if self._closed:
            raise ChannelClosed("recv on a closed connection")
        envelope = self._in.get(timeout)
        if envelope is None:
            if self._closed:
                raise ChannelClosed("recv on a closed connection")
            raise ChannelClosed(self._in.reason)
        return envelope

    def close(self) -> None:
        """Close both directions; the other end still receives what was sent before."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._in.close("connection closed")
        self._out.finish("the peer closed the connection")


class MemoryServer:
    """Accepts in-memory connections made with :func:`memory_connect`.

    ``on_connect`` gets the server's end of each connection, in the connecting thread, before
    :func:`memory_connect` returns; as for the gRPC server it must return quickly, and raising
    refuses the connection.
    """

    def __init__(
        self,
        on_connect: Callable[[Connection], None],
        *,
        identity: PeerIdentity | None = None,
    ) -> None:
        self.identity = identity or PeerIdentity("server", "", "server")
        self._on_connect = on_connect
        self._lock = threading.Lock()
        self._connections: list[MemoryConnection] = []
        self._stopped = False

    @property
    def connections(self) -> list[Connection]:
        """The server ends of the connections not closed yet."""
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            return list(self._connections)

    def accept(self, conn: MemoryConnection) -> None:
        """Register ``conn`` and hand it to ``on_connect``; ConnectError if refused."""
        with self._lock:
            if self._stopped:
                raise ConnectError("the server is stopped")
            self._connections.append(conn)
        try:
            self._on_connect(conn)
        except FedraError as err:
            conn.close()
            raise ConnectError(f"the server refused the connection: {err}") from err
        except Exception as err:
            logger.exception("on_connect failed for a connection from %s", conn.peer.name)
            conn.close()
            raise ConnectError("the server refused the connection (internal error)") from err

    def stop(self, grace: float = 1.0) -> None:
        """Close every connection and refuse new ones (``grace`` is accepted and ignored)."""
        del grace
        with self._lock:
            self._stopped = True
            open_now, self._connections = self._connections, []
        for conn in open_now:
            conn.close()


def memory_connect(server: MemoryServer, peer_name: str, org: str, role: str) -> Connection:
    """Connect to ``server`` as (``peer_name``, ``org``, ``role``); the client's end."""
    to_server: Pipe[Envelope] = Pipe(QUEUED_ENVELOPES)
    to_client: Pipe[Envelope] = Pipe(QUEUED_ENVELOPES)
    server_end = MemoryConnection(PeerIdentity(peer_name, org, role), to_server, to_client)
    client_end = MemoryConnection(server.identity, to_client, to_server)
    server.accept(server_end)
    return client_end
