"""The overseer's HTTPS service: mutual TLS against the project's CA, JSON in and out.

Every connection must present a certificate issued by the project's root CA (TLS 1.2+,
``CERT_REQUIRED``); its subject (CN, O, OU) is the caller's identity and role.

Limits before trust: a new connection first does its TLS handshake in a thread of its own,
within :data:`HANDSHAKE_TIMEOUT` seconds; at most :data:`MAX_HANDSHAKES` handshakes are in
progress at once, :data:`MAX_HANDSHAKES_PER_ADDRESS` from one address. Only an authenticated
connection takes one of the :data:`MAX_CONNECTIONS` serving slots, at most
:data:`MAX_PER_IDENTITY` of them per certificate identity. So connections that never finish a
handshake cannot take the slots of the servers and sites that do, and one certificate cannot
take them all. Each request has :data:`REQUEST_TIMEOUT` seconds; bodies are read only when
their declared length is within :data:`fedra.overseer.messages.MAX_REQUEST_BYTES`. Every
refused connection is one line in the log: from where (and who, once known) and why.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from fedra.overseer.api import OverseerApi, Reply
from fedra.overseer.election import Election
from fedra.overseer.errors import OverseerError
from fedra.overseer.messages import MAX_REQUEST_BYTES, encode
from fedra.overseer.settings import OverseerSettings
from fedra.overseer.store import MemoryStateStore, StateStore
from fedra.pki import CertificateError, TlsFiles, identity_of

log = logging.getLogger(__name__)

#: Authenticated connections served at once; more are closed at once.
MAX_CONNECTIONS = 64
#: Authenticated connections of one certificate identity served at once.
MAX_PER_IDENTITY = 8
#: TLS handshakes in progress at once (connections not yet authenticated); more are closed.
MAX_HANDSHAKES = 256
#: TLS handshakes in progress at once from one network address.
MAX_HANDSHAKES_PER_ADDRESS = 16
#: Seconds a new connection has to complete its TLS handshake.
HANDSHAKE_TIMEOUT = 5.0
#: Seconds an authenticated connection has for each read or write.
REQUEST_TIMEOUT = 10.0


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """A TLS server context that requires a client certificate from ``tls.ca``."""
    ca_pem, _, _ = tls.load()  # clear errors for missing or non-PEM files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except (ssl.SSLError, ValueError) as err:
        raise CertificateError(f"cannot use the overseer's TLS files {tls.cert}: {err}") from err
    return context


class _Places:
    """Places in use, in all and per key (an address, an identity), each count bounded."""

    def __init__(self, total: int, per_key: int, what: str, whose: str, state: str) -> None:
        self._total, self._per_key = total, per_key
        self._what, self._whose, self._state = what, whose, state
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def take(self, key: str) -> str | None:
        """Take a place for ``key``; why not (a one-line reason) when a bound is reached."""
        with self._lock:
            held = self._held.get(key, 0)
            if sum(self._held.values()) >= self._total:
                return f"{self._total} {self._what} are {self._state} (the limit)"
            if held >= self._per_key:
                return f"{held} {self._what} {self._whose} are {self._state} (the limit)"
            self._held[key] = held + 1
            return None

    def give(self, key: str) -> None:
        """Give back a place of ``key``."""
        with self._lock:
            held = self._held.get(key, 0) - 1
            if held > 0:
                self._held[key] = held
            else:
                self._held.pop(key, None)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, api: OverseerApi):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context = context
        self.api = api
        self._handshakes = _Places(
            MAX_HANDSHAKES,
            MAX_HANDSHAKES_PER_ADDRESS,
            "TLS handshakes",
            "from that address",
            "in progress",
        )
        self._serving = _Places(
            MAX_CONNECTIONS, MAX_PER_IDENTITY, "connections", "of that identity", "being served"
        )
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn): skip that.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        try:
            wrapped = self.context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError):
            sock.close()
            raise
        return wrapped, address

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the connection's thread when a handshake slot is free (else close it)."""
        address = str(client_address[0])
        refused = self._handshakes.take(address)
        if refused is not None:
            log.warning("refused a connection from %s: %s", address, refused)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._handshakes.give(address)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handshake (bounded in time), then serve in a slot of the authenticated identity."""
        address = str(client_address[0])
        try:
            key = self._handshake(request, address)
        finally:
            self._handshakes.give(address)
        if key is None:
            self.shutdown_request(request)
            return
        refused = self._serving.take(key)
        if refused is not None:
            log.warning("refused a connection of %s from %s: %s", key, address, refused)
            self.shutdown_request(request)
            return
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._serving.give(key)

    def _handshake(self, request: Any, address: str) -> str | None:
        """The TLS handshake within HANDSHAKE_TIMEOUT; the peer's identity, or None (logged)."""
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            request.do_handshake()
            der = request.getpeercert(binary_form=True)
            if not der:  # cannot happen with CERT_REQUIRED; refuse rather than trust
                raise CertificateError("the client presented no certificate")
            who = identity_of(ssl.DER_cert_to_PEM_cert(bytes(der)).encode("ascii"))
        except (OSError, ValueError, CertificateError) as err:
            log.warning("refused a connection from %s: TLS handshake failed: %s", address, err)
            return None
        return f"{who.name} ({who.role})"

    def handle_error(self, request: Any, client_address: Any) -> None:
        err = sys.exc_info()[1]
        log.info("connection from %s failed: %s", client_address[0], err)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT
    server_version = "fedra-overseer"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(self.timeout)  # the handshake is done (see _Server)
        super().setup()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        try:
            who = identity_of(ssl.DER_cert_to_PEM_cert(self._peer_der()).encode("ascii"))
        except CertificateError as err:
            self._reply(Reply(403, {"error": str(err), "status": 403}))
            return
        body = b""
        if method == "POST":
            read = self._read_body()
            if isinstance(read, Reply):
                self._reply(read)
                return
            body = read
        path = urlsplit(self.path).path
        self._reply(self.server.api.handle(method, path, who, body))
        log.debug("%s %s from %s (%s)", method, path, who.name, who.role)

    def _peer_der(self) -> bytes:
        der = self.request.getpeercert(binary_form=True)
        if not der:  # cannot happen with CERT_REQUIRED; refuse rather than trust
            raise CertificateError("the client presented no certificate")
        return bytes(der)

    def _read_body(self) -> bytes | Reply:
        if self.headers.get("Transfer-Encoding"):
            return _error(411, "send the body with a Content-Length, not Transfer-Encoding")
        declared = self.headers.get("Content-Length")
        if declared is None:
            return _error(411, "a Content-Length header is required")
        if not declared.isdigit() or len(declared) > 12:
            return _error(400, f"Content-Length must be a number of bytes, got {declared!r}")
        length = int(declared)
        if length > MAX_REQUEST_BYTES:
            return _error(
                413, f"the body is {length} bytes, more than the limit of {MAX_REQUEST_BYTES}"
            )
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, f"expected Content-Type application/json, got {content_type!r}")
        body = self.rfile.read(length)
        if len(body) != length:
            return _error(400, f"the body ended after {len(body)} of {length} bytes")
        return body

    def _reply(self, reply: Reply) -> None:
        data = encode(reply.body)
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message, "status": status})


class OverseerService:
    """The overseer: an election, its saved state and the HTTPS API around them.

    ``port=0`` picks a free port (see :attr:`port` after :meth:`start`). ``servers`` limits
    which server names may register (``None``: any ``server`` certificate of the CA);
    ``revoked`` and ``admins``: the project's lists (see :class:`OverseerApi`).
    Raises :class:`fedra.overseer.StateFileError` when the saved state is unreadable.
    """

    def __init__(
        self,
        tls: TlsFiles,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_root: str = "/api/v1",
        settings: OverseerSettings | None = None,
        store: StateStore | None = None,
        servers: frozenset[str] | None = None,
        election: Election | None = None,
        revoked: frozenset[str] = frozenset(),
        admins: frozenset[tuple[str, str, str]] | None = None,
    ) -> None:
        self._context = server_context(tls)
        self._store: StateStore = store if store is not None else MemoryStateStore()
        if election is None:
            election = Election(settings, saved=self._store.load())
        self.election = election
        self.api = OverseerApi(
            election,
            self._store,
            api_root=api_root,
            servers=servers,
            revoked=revoked,
            admins=admins,
        )
        self.host = host
        self.port = port
        self.api_root = api_root.rstrip("/")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``https://host:port/api/v1``, as clients reach it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{self.api_root}"

    def start(self) -> int:
        """Listen and serve in a background thread; return the port."""
        if self._server is not None:
            raise OverseerError("the overseer service is already started")
        try:
            self._server = _Server((self.host, self.port), self._context, self.api)
        except OSError as err:
            raise OverseerError(
                f"the overseer cannot listen on {self.host}:{self.port}: {err.strerror or err}"
            ) from err
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="overseer-https",
            daemon=True,
        )
        self._thread.start()
        log.info("overseer listening on %s", self.url)
        return self.port

    def stop(self) -> None:
        """Stop serving, wait for requests in progress, close the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> OverseerService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
