"""The client servers, sites and the admin console use to talk to the overseer.

Each call opens one gRPC channel with mutual TLS (the overseer's certificate must be issued
by the project's CA and name the host in the URL), makes one unary call and closes the
channel, all under ``timeout`` seconds; the answer must be signed by a certificate with the
role ``overseer`` (see :mod:`.wire`). Failures are typed: :class:`OverseerUnavailable`
(unreachable, TLS failure, timeout, overloaded, cannot save: retry later) and
:class:`OverseerRefused` (the request is wrong; carries the status and the message).
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import grpc
import msgspec

from fedra.core import ConfigError, WireError
from fedra.overseer.errors import OverseerError, OverseerRefused, OverseerUnavailable
from fedra.overseer.messages import (
    MAX_ANSWER_BYTES,
    MAX_REQUEST_BYTES,
    Host,
    OverseerAnswer,
    ParticipantHeartbeat,
    Port,
    PromoteRequest,
    ServerHeartbeat,
    answer_from_json,
    encode,
)
from fedra.overseer.wire import (
    CERT_KEY,
    NONCE_BYTES,
    NONCE_KEY,
    REFUSALS,
    SIGNATURE_KEY,
    STATUSES,
    check_answer,
)
from fedra.pki import CertificateError, TlsFiles

#: Seconds a call may take, connection and TLS handshake included.
DEFAULT_TIMEOUT = 5.0

#: The client's gRPC settings: message limits, and a connection of its own per call.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
    ("grpc.max_send_message_length", MAX_REQUEST_BYTES),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_retries", 0),
]


class OverseerEntry(msgspec.Struct, frozen=True):
    """The ``overseer`` block of a kit's ``fed_*.json`` (other keys, such as ``name``, are
    ignored): ``url``, or ``host``, ``port``, ``protocol`` and ``api_root``."""

    url: str | None = None
    protocol: Literal["https"] = "https"
    host: Host | None = None
    port: Port | None = None
    api_root: str = "/api/v1"


def overseer_url(entry: object) -> str:
    """The URL of the overseer from the ``overseer`` block of a kit's ``fed_*.json``.

    Uses ``url`` when present, else ``protocol``, ``host``, ``port`` and ``api_root``.
    Raises :class:`fedra.core.ConfigError` naming the key that is missing or wrong.
    """
    try:
        block = msgspec.convert(entry, OverseerEntry, strict=False)
    except msgspec.ValidationError as err:
        raise ConfigError(f"overseer: {err}") from None
    url = block.url
    if url is None:
        if block.host is None or block.port is None:
            raise ConfigError(f"overseer: expected host and port (or url), got {entry!r}")
        url = f"{block.protocol}://{block.host}:{block.port}{block.api_root}"
    if urlsplit(url).scheme != "https":
        raise ConfigError(f"overseer url: expected https://host:port/api/v1, got {url!r}")
    return url


class OverseerClient:
    """Talks to the overseer at ``url`` (``https://host:port/api/v1``) as the owner of ``tls``.

    Raises :class:`fedra.core.ConfigError` for a URL that is not https, and
    :class:`fedra.pki.CertificateError` when the TLS files cannot be read.
    """

    def __init__(self, url: str, tls: TlsFiles, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"overseer url: expected https://host:port/api/v1, got {url!r}")
        try:
            port = parts.port or 443
        except ValueError as err:
            raise ConfigError(f"overseer url {url!r}: {err}") from err
        if timeout <= 0:
            raise ConfigError(f"overseer timeout must be positive, got {timeout!r}")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._target = f"{host}:{port}"
        self._root = parts.path.rstrip("/")
        self._timeout = timeout
        self._ca_pem, cert_pem, key_pem = tls.load()
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=self._ca_pem, private_key=key_pem, certificate_chain=cert_pem
        )

    def heartbeat(self, beat: ServerHeartbeat | ParticipantHeartbeat) -> OverseerAnswer:
        """Send a heartbeat; the answer names the hot server and, for it, carries the lease.

        The lease's ``deadline`` is set on this process's :func:`time.monotonic` clock,
        counted from just before the request was sent.
        """
        sent_at = time.monotonic()
        answer = self._call("/heartbeat", encode(beat))
        if answer.lease is not None:
            lease = msgspec.structs.replace(answer.lease, deadline=sent_at + answer.lease.seconds)
            answer = msgspec.structs.replace(answer, lease=lease)
        return answer

    def promote(self, name: str) -> OverseerAnswer:
        """Make server ``name`` hot (role ``project_admin`` only); the full state after it."""
        return self._call("/promote", encode(PromoteRequest(name)))

    def state(self) -> OverseerAnswer:
        """The full state: servers, hot server, SSID, sites and admins (admin roles only)."""
        return self._call("/state", b"")

    # -- one call -------------------------------------------------------------------------
    def _call(self, endpoint: str, body: bytes) -> OverseerAnswer:
        path = self._root + endpoint
        nonce = os.urandom(NONCE_BYTES)
        with grpc.secure_channel(self._target, self._credentials, _CHANNEL_OPTIONS) as channel:
            try:
                data, call = channel.unary_unary(path).with_call(
                    body, timeout=self._timeout, metadata=((NONCE_KEY, nonce),)
                )
            except grpc.RpcError as err:
                raise self._failure(err) from None
            trailing = dict(call.trailing_metadata() or ())
        cert, signature = trailing.get(CERT_KEY), trailing.get(SIGNATURE_KEY)
        if not isinstance(cert, bytes) or not isinstance(signature, bytes):
            raise OverseerError(f"{self.url} is not a Fedra overseer: its answer is not signed")
        try:
            check_answer(cert, signature, self._ca_pem, nonce, path, data)
        except CertificateError as err:
            raise OverseerError(f"{self.url} is not the overseer: {err}") from err
        try:
            return answer_from_json(data)
        except WireError as err:
            raise OverseerError(f"overseer {self.url} sent a malformed answer: {err}") from err

    def _failure(self, err: Any) -> OverseerError:
        """The typed error of a failed call."""
        code, details = err.code(), str(err.details() or "")
        status = STATUSES.get(code)
        if status in REFUSALS:
            return OverseerRefused(self.url, status, details)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return OverseerUnavailable(self.url, f"no answer within {self._timeout:g} s")
        if code != grpc.StatusCode.UNAVAILABLE:
            return OverseerUnavailable(self.url, details or getattr(code, "name", str(code)))
        if "Hostname Verification" in details or "Peer name" in details:
            reason = f"its certificate failed verification: it does not name {self._host!r}"
        elif "CERTIFICATE_VERIFY_FAILED" in details:
            reason = "its certificate failed verification: not issued by this project's CA"
        elif "handshake" in details.lower() or "Socket closed" in details:
            reason = f"TLS failed ({details}): it may refuse this certificate"
        else:
            reason = details or "cannot connect"
        return OverseerUnavailable(self.url, reason)
