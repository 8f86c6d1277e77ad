"""The server side of the gRPC transport: mutual TLS, one Connection per Connect stream.

The same server serves sites (the federation port) and admin clients (the admin port); it does
not care who connects as long as the client's certificate is issued by the project's CA. The
peer's identity comes from that verified certificate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
from cryptography import x509

from fedra.core import FedraError
from fedra.transport._identity import identity_of_cert, identity_of_pem
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport._stream import (
    COMMON_OPTIONS,
    DEFAULT_MAX_MESSAGE,
    SERVER_CERT_KEY,
    SERVICE,
    StreamConnection,
)
from fedra.transport.connection import Connection, PeerIdentity
from fedra.transport.errors import ListenError
from fedra.transport.spool import Spool

logger = logging.getLogger(__name__)

#: Bytes of one stream's data the server buffers before the sender must wait for it to read.
#: gRPC keeps a read buffer per connection sized by the biggest reads it has seen (about twice
#: this window) even while the connection is idle: with 32 sites, 1 MiB cost the server about
#: 16 MiB more than 256 KiB, for the same upload speed on localhost.
RECEIVE_WINDOW = 1 << 18

#: Server-only channel arguments: accept the clients' keepalive pings, never share the port.
SERVER_OPTIONS: list[tuple[str, int]] = [
    *COMMON_OPTIONS,
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
    # A fixed receive window per stream instead of one grown by BDP probing: a stream that
    # is not read (a site whose result waits at the server's receive gate) then holds at most
    # this much in gRPC's buffers. Localhost and LAN speeds are unchanged; over a WAN it caps
    # one upload at about RECEIVE_WINDOW / round-trip time (5 MB/s at 50 ms).
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", RECEIVE_WINDOW),
]


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class _Servicer:
    """Turns each Connect stream into a StreamConnection handed to the server's callback.

    Registered by hand rather than through the generated servicer so that responses go out
    already encoded (see :func:`fedra.transport._frames.encode_frame`).
    """

    def __init__(self, server: TransportServer) -> None:
        self._server = server

    def Connect(  # the RPC's name
        self, request_iterator: Iterator[pb.Frame], context: Any
    ) -> Iterator[bytes]:
        """Serve one connection for as long as it is open (this holds one worker thread)."""
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        peer = identity_of_cert(x509.load_pem_x509_certificate(pems[0]))
        conn = StreamConnection(
            peer, max_message=self._server.max_message, spool=self._server.spool
        )
        refused = self._server.accept(conn)
        if refused is not None:
            conn.close()
            context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)
        context.add_callback(lambda: self._server.ended(conn))
        reader = threading.Thread(
            target=conn.pump,
            args=(request_iterator,),
            name=f"fedra-recv-{peer.name}",
            daemon=True,
        )
        reader.start()
        return self._respond(conn, context)

    def _respond(self, conn: StreamConnection, context: Any) -> Iterator[bytes]:
        context.send_initial_metadata(((SERVER_CERT_KEY, self._server.cert_pem),))
        yield from conn.outgoing()
        if conn.abort_reason is not None:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(conn.abort_reason)


class TransportServer:
    """A gRPC server of :class:`Connection` s over mutual TLS.

    Every Connect stream from a client whose certificate the CA ``ca_pem`` issued becomes a
    :class:`Connection` passed to ``on_connect``, in a thread of the server, before the
    client's ``connect`` returns. ``on_connect`` must return quickly and must not wait on the
    connection: it hands the connection to the application, which reads from it in its own
    thread. (The server thread that called it carries the connection's outgoing frames once it
    returned, so a ``recv`` there never returns, and a ``send`` of more than a few frames
    blocks for good.) If ``on_connect`` raises, the connection is refused and the client's
    ``connect`` raises ConnectError (with the message of a FedraError).

    Each open connection holds one of ``max_workers`` server threads (and a reader thread);
    further clients are refused (``RESOURCE_EXHAUSTED``) while all are busy, so size it to the
    peers expected at once (a server parent: its kit's ``max_connections``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ca_pem: bytes,
        cert_pem: bytes,
        key_pem: bytes,
        on_connect: Callable[[Connection], None],
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_workers: int = 64,
        spool: Spool | None = None,
        receive_window: int | None = None,
    ) -> None:
        self._address = _address(host, port)
        window = receive_window or RECEIVE_WINDOW  # None: the default
        self._options = [
            (key, window if key == "grpc.http2.lookahead_bytes" else value)
            for key, value in SERVER_OPTIONS
        ]
        self._credentials = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
        )
        self.cert_pem = cert_pem
        self.identity: PeerIdentity = identity_of_pem(cert_pem)
        self.max_message = max_message
        #: Where the connections receive big messages (None: in memory).
        self.spool = spool
        self._on_connect = on_connect
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._connections: set[StreamConnection] = set()
        self._server: Any = None
        self._stopping = False

    def start(self) -> int:
        """Listen and serve; returns the port bound (port 0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError("the server was already started")
        server = grpc.server(
            futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="fedra-conn"),
            options=self._options,
            maximum_concurrent_rpcs=self._max_workers,
        )
        handler = grpc.stream_stream_rpc_method_handler(
            _Servicer(self).Connect, request_deserializer=pb.Frame.FromString
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler}),)
        )
        try:
            port = int(server.add_secure_port(self._address, self._credentials))
        except RuntimeError as err:
            raise ListenError(f"cannot listen on {self._address}: {err}") from None
        if port == 0:
            raise ListenError(f"cannot listen on {self._address}")
        server.start()
        self._server = server
        return port

    @property
    def connections(self) -> list[Connection]:
        """The connections open now."""
        with self._lock:
            return list(self._connections)

    def accept(self, conn: StreamConnection) -> str | None:
        """Register ``conn`` and hand it to ``on_connect``; why it is refused, or None."""
        with self._lock:
            if self._stopping:
                return "the server is stopping"
            self._connections.add(conn)
        try:
            self._on_connect(conn)
        except FedraError as err:
            logger.warning("refused a connection from %s: %s", conn.peer.name, err)
            refused = f"the server refused the connection: {err}"
        except Exception:
            logger.exception("on_connect failed for a connection from %s", conn.peer.name)
            refused = "the server refused the connection (internal error, see the server log)"
        else:
            return None
        self.forget(conn)
        return refused

    def forget(self, conn: StreamConnection) -> None:
        """Drop ``conn`` from the open connections."""
        with self._lock:
            self._connections.discard(conn)

    def ended(self, conn: StreamConnection) -> None:
        """The stream of ``conn`` is over (for any reason): nothing more can be sent on it."""
        conn.stream_terminated("the connection ended")
        self.forget(conn)

    def stop(self, grace: float = 1.0) -> None:
        """Close every connection and stop; streams still open after ``grace`` s are cut."""
        with self._lock:
            self._stopping = True
            open_now = list(self._connections)
        for conn in open_now:
            conn.close()
        if self._server is not None:
            self._server.stop(grace).wait()
