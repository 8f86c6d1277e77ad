"""The client side of the gRPC transport: :func:`connect` opens one Connection over mutual TLS."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import grpc

from fedra.transport._identity import check_server_cert
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport._stream import (
    COMMON_OPTIONS,
    DEFAULT_MAX_MESSAGE,
    METHOD,
    SERVER_CERT_KEY,
    StreamConnection,
)
from fedra.transport.connection import Connection, PeerIdentity
from fedra.transport.errors import ConnectError
from fedra.transport.spool import Spool

#: After ``close``, how long the server has to end the stream before the client cuts it.
CLOSE_GRACE = 10.0
#: How long the reachability probe of a failed connect waits.
_PROBE_TIMEOUT = 2.0
_SCHEMES = ("dns:///", "dns:", "ipv4:", "ipv6:")


def split_target(target: str) -> tuple[str, int] | None:
    """(host, port) of a ``host:port`` target (also ``[v6]:port``, ``dns:///``); None if other."""
    for scheme in _SCHEMES:
        if target.startswith(scheme):
            target = target[len(scheme) :]
            break
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host or "/" in host:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None
    return host, int(port)


def _diagnose(
    target: str,
    ca_pem: bytes,
    server_name: str | None,
    timeout: float,
    retry_refused: bool = True,
) -> tuple[str, bool]:
    """Why a channel is not ready, and whether that is final (TLS; a refused TCP connection
    too unless ``retry_refused``) rather than transient.

    Probes the address: a TCP connection, then a TLS handshake without a client certificate
    (the server's certificate is checked the way gRPC checks it).
    """
    address = split_target(target)
    if address is None:
        return f"cannot connect to {target}", False
    name = server_name or address[0]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection(address, timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=name),
        ):
            pass
    except ssl.SSLCertVerificationError as err:
        return (
            f"reached {target} but its certificate is not trusted: {err.verify_message} "
            f"(is ca_pem the project's root CA, and does the server's certificate name {name!r}? "
            "pass server_name= when it names another host)"
        ), True
    except ssl.SSLError as err:
        return f"reached {target} but the TLS handshake failed: {err}", True
    except ConnectionRefusedError as err:
        return (
            f"cannot reach {target}: {err.strerror or err} (nothing listens on that port: is "
            "the server running, and are the host and port right?)"
        ), not retry_refused
    except OSError as err:
        return (
            f"cannot reach {target}: {err.strerror or err} "
            "(is the server running, and are the host and port right?)"
        ), False
    return (
        f"{target} refused this client's certificate (is it issued by the server's CA, and "
        "still valid?)"
    ), True


def _wait_ready(
    channel: Any,
    target: str,
    ca_pem: bytes,
    server_name: str | None,
    timeout: float,
    retry_refused: bool = True,
) -> None:
    """Wait until ``channel`` is ready; ConnectError at once on a TLS failure (and on a refused
    connection unless ``retry_refused``), else on timeout."""
    deadline = time.monotonic() + timeout
    states: list[Any] = []
    changed = threading.Condition()

    def watch(state: Any) -> None:
        with changed:
            states.append(state)
            changed.notify_all()

    channel.subscribe(watch, try_to_connect=True)
    try:
        seen = 0
        while True:
            with changed:
                remaining = deadline - time.monotonic()
                if len(states) == seen and remaining > 0:
                    changed.wait(remaining)  # a new state or the deadline; rechecked below
                new, seen = states[seen:], len(states)
            if grpc.ChannelConnectivity.READY in new:
                return
            probe = min(_PROBE_TIMEOUT, max(0.1, deadline - time.monotonic()))
            if not new:
                message, _ = _diagnose(target, ca_pem, server_name, probe)
                raise ConnectError(f"{message} (gave up after {timeout:g} s)")
            if grpc.ChannelConnectivity.TRANSIENT_FAILURE in new:
                message, final = _diagnose(target, ca_pem, server_name, probe, retry_refused)
                if final:
                    raise ConnectError(message)
    finally:
        channel.unsubscribe(watch)


def _refusal(call: Any) -> str:
    """Why the server ended a Connect call before accepting it."""
    code = call.code()
    details = call.details() or ""
    name = getattr(code, "name", str(code))
    if name == "PERMISSION_DENIED":
        return details or "the server refused the connection"
    if name == "UNAVAILABLE":
        return (
            "the server closed the connection during the TLS handshake; it probably does not "
            f"accept this client's certificate (not issued by its CA?): {details}"
        )
    return f"the server ended the connection with {name}: {details}"


class _ClientConnection(StreamConnection):
    """A StreamConnection that owns its gRPC channel and call."""

    def __init__(self, channel: Any, *, max_message: int, spool: Spool | None = None) -> None:
        super().__init__(PeerIdentity("", "", ""), max_message=max_message, spool=spool)
        self._channel = channel
        self._call: Any = None
        self._ready = threading.Event()
        self.connect_error: str | None = None
        self._lock = threading.Lock()
        self._ended = False
        self._timer: threading.Timer | None = None

    def start(self, *, ca_pem: bytes, host: str | None) -> None:
        """Open the Connect stream and start the reader thread."""
        stream = self._channel.stream_stream(METHOD, response_deserializer=pb.Frame.FromString)
        self._call = stream(self.outgoing())
        threading.Thread(
            target=self._run, args=(ca_pem, host), name="fedra-recv", daemon=True
        ).start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the server accepted or refused the stream; False on timeout."""
        return self._ready.wait(timeout)

    def _run(self, ca_pem: bytes, host: str | None) -> None:
        call = self._call
        try:
            cert = dict(call.initial_metadata() or ()).get(SERVER_CERT_KEY)
            if cert is None:
                self.connect_error = _refusal(call)
            else:
                try:
                    self._peer = check_server_cert(cert, ca_pem, host)
                except ValueError as err:
                    self.connect_error = str(err)
                    call.cancel()
        except Exception as err:  # the call broke in an unexpected way
            self.connect_error = f"the connection broke: {err}"
            call.cancel()
        finally:
            self._ready.set()
        self.pump(call)

    def cancel(self) -> None:
        """Cut the stream now."""
        if self._call is not None:
            self._call.cancel()

    def _after_close(self, abort: str | None) -> None:
        if abort is not None:
            self.cancel()
            return
        with self._lock:
            if self._ended:
                return
            self._timer = threading.Timer(CLOSE_GRACE, self.cancel)
            self._timer.daemon = True
            self._timer.start()

    def _stream_ended(self) -> None:
        with self._lock:
            self._ended = True
            if self._timer is not None:
                self._timer.cancel()
        self._channel.close()


def connect(
    target: str,
    *,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    server_name: str | None = None,
    timeout: float = 10.0,
    max_message: int = DEFAULT_MAX_MESSAGE,
    spool: Spool | None = None,
    retry_refused: bool = True,
    receive_window: int | None = None,
) -> Connection:
    """Open a connection to the Fedra server at ``target`` (``host:port``) over mutual TLS.

    ``spool``: receive big messages into files there instead of memory. ``retry_refused``:
    keep trying while nothing listens at ``target`` (a server starting, or restarting); False
    fails at once then, for a person waiting on a command. ``receive_window``: bytes of the
    server's messages in flight before it waits for this side to read (a fixed HTTP/2
    window); None: gRPC grows it by itself (BDP probing).

    The client presents ``cert_pem``/``key_pem`` and trusts servers whose certificate the CA
    ``ca_pem`` issued for the host in ``target``, or for ``server_name`` when given (for when
    the address differs from the name in the server's certificate). Returns once the server
    accepted the connection (its ``on_connect`` ran); the connection's ``peer`` is the
    server's identity. Raises ConnectError when the server refuses, at once when the TLS
    handshake fails either way (a certificate problem does not go away by waiting), and after
    ``timeout`` seconds when the server cannot be reached.
    """
    deadline = time.monotonic() + timeout
    options: list[tuple[str, int | str]] = [
        *COMMON_OPTIONS,
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if receive_window is not None:
        options += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", receive_window)]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )
    channel = grpc.secure_channel(target, credentials, options=options)
    try:
        _wait_ready(channel, target, ca_pem, server_name, timeout, retry_refused)
    except BaseException:
        channel.close()
        raise
    address = split_target(target)
    conn = _ClientConnection(channel, max_message=max_message, spool=spool)
    conn.start(ca_pem=ca_pem, host=server_name or (address[0] if address else None))
    if not conn.wait_ready(max(1.0, deadline - time.monotonic())):
        conn.cancel()
        raise ConnectError(f"{target} accepted the connection but did not answer in {timeout:g} s")
    if conn.connect_error is not None:
        raise ConnectError(f"cannot connect to {target}: {conn.connect_error}")
    return conn
