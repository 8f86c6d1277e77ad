"""The overseer's gRPC service: mutual TLS against the project's CA, JSON in and out.

Every connection must present a certificate issued by the project's root CA (gRPC's TLS,
client authentication required); its subject (CN, O, OU) is the caller's identity and role.
Each call is answered by :class:`fedra.overseer.OverseerApi`; :mod:`.wire` says how calls,
refusals and the signed answers travel.

Limits before trust. gRPC does every TLS handshake asynchronously, in its own I/O threads:
a connection that has not finished its handshake holds no serving thread, and is closed when
it has not finished within :data:`HANDSHAKE_TIMEOUT` seconds, so connections that never
authenticate cannot take the places of the servers and sites that do. Then:

- a request is read only up to :data:`fedra.overseer.messages.MAX_REQUEST_BYTES` (gRPC
  refuses a longer message before the overseer sees it), and its metadata up to
  :data:`MAX_METADATA_BYTES`;
- at most :data:`MAX_CALLS` calls are in progress or waiting for one of the :data:`WORKERS`
  threads; more are refused at once (``RESOURCE_EXHAUSTED``);
- at most :data:`MAX_PER_IDENTITY` calls of one certificate identity are served at once, so
  one certificate cannot take every thread; a connection carries at most that many calls at
  once (HTTP/2 streams);
- an authenticated connection with no call for :data:`IDLE_TIMEOUT` seconds is closed.

Every call refused for its certificate, its identity's limit or the project's lists (revoked,
unlisted admin) is one line in the log, with who and from where. A refused TLS handshake
happens in gRPC's core, before any identity is known: the overseer process logs gRPC's own
report of it (:mod:`fedra.host.stderr_log`), which does not name the peer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from types import TracebackType
from typing import Any, NoReturn

import grpc

from fedra.overseer.api import OverseerApi
from fedra.overseer.election import Election
from fedra.overseer.errors import OverseerError
from fedra.overseer.messages import MAX_ANSWER_BYTES, MAX_REQUEST_BYTES, answer_to_json
from fedra.overseer.settings import OverseerSettings
from fedra.overseer.statefile import MemoryStateStore, StateStore
from fedra.overseer.wire import (
    CERT_KEY,
    CODES,
    NONCE_BYTES,
    NONCE_KEY,
    SIGNATURE_KEY,
    load_signing_key,
    sign_answer,
)
from fedra.pki import CertificateError, TlsFiles, identity_of

log = logging.getLogger(__name__)

#: Calls in progress or waiting for a thread at once; more are refused at once.
MAX_CALLS = 64
#: Threads that serve calls.
WORKERS = 16
#: Calls of one certificate identity served at once (and calls on one connection at once).
MAX_PER_IDENTITY = 8
#: Seconds a new connection has to complete its TLS (and HTTP/2) handshake.
HANDSHAKE_TIMEOUT = 5.0
#: Seconds an authenticated connection may stay open without a call.
IDLE_TIMEOUT = 30.0
#: Largest metadata (headers) of a call.
MAX_METADATA_BYTES = 8 * 1024


def server_options() -> list[tuple[str, int]]:
    """The gRPC server's settings that enforce the limits above."""
    return [
        ("grpc.server_handshake_timeout_ms", int(HANDSHAKE_TIMEOUT * 1000)),
        ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
        ("grpc.max_send_message_length", MAX_ANSWER_BYTES),
        ("grpc.max_concurrent_streams", MAX_PER_IDENTITY),
        ("grpc.max_connection_idle_ms", int(IDLE_TIMEOUT * 1000)),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.so_reuseport", 0),  # never share the port with another process
    ]


class _Places:
    """Places in use per key (an identity), each count bounded."""

    def __init__(self, per_key: int) -> None:
        self._per_key = per_key
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def take(self, key: str) -> str | None:
        """Take a place for ``key``; why not (a one-line reason) when the bound is reached."""
        with self._lock:
            held = self._held.get(key, 0)
            if held >= self._per_key:
                return f"{held} calls of that identity are being served (the limit)"
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


def _abort(context: Any, code: Any, message: str) -> NoReturn:
    context.abort(code, message)  # raises
    raise AssertionError("grpc's abort returned")


class _Calls(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method path goes to :meth:`serve` (the API routes it), bytes in and out."""

    def __init__(self, serve: Callable[[str, bytes, Any], bytes]) -> None:
        self._serve = serve

    def service(self, details: Any) -> Any:
        path = str(details.method)
        return grpc.unary_unary_rpc_method_handler(
            lambda body, context: self._serve(path, body, context)
        )


class OverseerService:
    """The overseer: an election, its saved state and the gRPC service around them.

    ``port=0`` picks a free port (see :attr:`port` after :meth:`start`). ``servers`` limits
    which server names may register (``None``: any ``server`` certificate of the CA);
    ``revoked`` and ``admins``: the project's lists (see :class:`OverseerApi`).
    Raises :class:`fedra.overseer.StateFileError` when the saved state is unreadable, and
    :class:`fedra.pki.CertificateError` when the TLS files cannot be used.
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
        ca_pem, cert_pem, key_pem = tls.load()  # clear errors for missing or non-PEM files
        identity_of(cert_pem)
        self._cert_pem = cert_pem
        self._key = load_signing_key(key_pem)
        self._credentials = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
        )
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
        self._calls = _Places(MAX_PER_IDENTITY)
        self._server: Any = None

    @property
    def url(self) -> str:
        """``https://host:port/api/v1``, as clients reach it (gRPC's scheme and paths)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{self.api_root}"

    def start(self) -> int:
        """Listen and serve in gRPC's threads; return the port."""
        if self._server is not None:
            raise OverseerError("the overseer service is already started")
        server = grpc.server(
            futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="overseer"),
            handlers=[_Calls(self._serve)],
            options=server_options(),
            maximum_concurrent_rpcs=MAX_CALLS,
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        try:
            port = int(server.add_secure_port(f"{host}:{self.port}", self._credentials))
        except RuntimeError as err:
            raise OverseerError(
                f"the overseer cannot listen on {host}:{self.port}: {err}"
            ) from None
        server.start()
        self._server, self.port = server, port
        log.info("overseer listening on %s", self.url)
        return self.port

    def stop(self) -> None:
        """Stop serving, wait (1 s at most) for calls in progress, close the port."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(1.0).wait()

    def _serve(self, path: str, body: bytes, context: Any) -> bytes:
        """One call: who (from the certificate), within the identity's places, answered and
        signed; or aborted with the reason."""
        pems = context.auth_context().get("x509_pem_cert")
        try:
            if not pems:  # cannot happen with client authentication; refuse rather than trust
                raise CertificateError("the client presented no certificate")
            who = identity_of(pems[0])
        except CertificateError as err:
            log.warning("refused a call from %s: %s", context.peer(), err)
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, str(err))
        key = f"{who.name} ({who.role})"
        refused = self._calls.take(key)
        if refused is not None:
            log.warning("refused a call of %s from %s: %s", key, context.peer(), refused)
            _abort(context, CODES[429], refused)
        nonce = dict(context.invocation_metadata()).get(NONCE_KEY)
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            self._calls.give(key)
            _abort(context, CODES[400], f"a call carries a nonce of {NONCE_BYTES} bytes")
        try:
            reply = self.api.handle(path, who, body)
        finally:
            self._calls.give(key)
        if reply.answer is None:
            _abort(context, CODES.get(reply.status, grpc.StatusCode.UNKNOWN), reply.error)
        data = answer_to_json(reply.answer)
        signature = sign_answer(self._key, nonce, path, data)
        context.set_trailing_metadata(((CERT_KEY, self._cert_pem), (SIGNATURE_KEY, signature)))
        log.debug("%s from %s (%s)", path, who.name, who.role)
        return data

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
