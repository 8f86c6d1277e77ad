"""The client servers, sites and the admin console use to talk to the overseer.

Each call opens one mutual-TLS connection (the overseer's certificate must be issued by the
project's CA, name the host in the URL and carry the role ``overseer``), sends one request
and reads one answer, all under ``timeout`` seconds. Failures are typed:
:class:`OverseerUnavailable` (unreachable, TLS failure, timeout, 5xx: retry later) and
:class:`OverseerRefused` (4xx: the request is wrong; carries status and message).
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from fedra.core import WireError
from fedra.overseer.errors import OverseerError, OverseerRefused, OverseerUnavailable
from fedra.overseer.messages import (
    MAX_ANSWER_BYTES,
    OverseerAnswer,
    ParticipantHeartbeat,
    ServerHeartbeat,
    answer_from_json,
    decode,
    encode,
    heartbeat_to_json,
)
from fedra.pki import CertificateError, TlsFiles, identity_of

#: Seconds a call may take, connection and TLS handshake included.
DEFAULT_TIMEOUT = 5.0


def overseer_url(entry: Mapping[str, Any]) -> str:
    """The URL of the overseer from the ``overseer`` block of a kit's ``fed_*.json``.

    Uses ``url`` when present, else ``protocol``, ``host``, ``port`` and ``api_root``.
    Raises :class:`fedra.core.ConfigError` naming the key that is missing or wrong.
    """
    from fedra.core import ConfigError

    url = entry.get("url")
    if url is None:
        try:
            protocol, host = str(entry.get("protocol", "https")), str(entry["host"])
            port, root = int(entry["port"]), str(entry.get("api_root", "/api/v1"))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(
                f"overseer: expected host, port (and protocol, api_root), got {dict(entry)!r}"
            ) from err
        url = f"{protocol}://{host}:{port}{root}"
    if not isinstance(url, str) or urlsplit(url).scheme != "https":
        raise ConfigError(f"overseer url: expected https://host:port/api/v1, got {url!r}")
    return url


def client_context(tls: TlsFiles) -> ssl.SSLContext:
    """A TLS client context: trusts only ``tls.ca``, presents ``tls.cert``, checks host names."""
    ca_pem, _, _ = tls.load()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except (ssl.SSLError, ValueError) as err:
        raise CertificateError(f"cannot use the TLS files {tls.cert}: {err}") from err
    return context


class OverseerClient:
    """Talks to the overseer at ``url`` (``https://host:port/api/v1``) as the owner of ``tls``.

    Raises :class:`fedra.core.ConfigError` for a URL that is not https, and
    :class:`fedra.pki.CertificateError` when the TLS files cannot be used.
    """

    def __init__(self, url: str, tls: TlsFiles, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        from fedra.core import ConfigError

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
        self._port = port
        self._root = parts.path.rstrip("/")
        self._timeout = timeout
        self._context = client_context(tls)

    def heartbeat(self, beat: ServerHeartbeat | ParticipantHeartbeat) -> OverseerAnswer:
        """Send a heartbeat; the answer names the hot server and, for it, carries the lease.

        The lease's ``deadline`` is set on this process's :func:`time.monotonic` clock,
        counted from just before the request was sent.
        """
        sent_at = time.monotonic()
        answer = self._call("POST", "/heartbeat", heartbeat_to_json(beat))
        if answer.lease is not None:
            lease = replace(answer.lease, deadline=sent_at + answer.lease.seconds)
            answer = replace(answer, lease=lease)
        return answer

    def promote(self, name: str) -> OverseerAnswer:
        """Make server ``name`` hot (role ``project_admin`` only); the full state after it."""
        return self._call("POST", "/promote", {"name": name})

    def state(self) -> OverseerAnswer:
        """The full state: servers, hot server, SSID, sites and admins (admin roles only)."""
        return self._call("GET", "/state", None)

    # -- one request ----------------------------------------------------------------------
    def _call(self, method: str, endpoint: str, body: dict[str, Any] | None) -> OverseerAnswer:
        conn = http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=self._context
        )
        try:
            status, data = self._exchange(conn, method, endpoint, body)
        except OverseerError:
            raise
        except ssl.SSLCertVerificationError as err:
            reason = f"its certificate failed verification: {err.verify_message or err}"
            raise OverseerUnavailable(self.url, reason) from err
        except ssl.SSLError as err:
            reason = f"TLS failed ({err.reason or err}): it may refuse this certificate"
            raise OverseerUnavailable(self.url, reason) from err
        except TimeoutError as err:
            raise OverseerUnavailable(self.url, f"no answer within {self._timeout:g} s") from err
        except (OSError, http.client.HTTPException) as err:
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise OverseerUnavailable(self.url, reason) from err
        finally:
            conn.close()
        try:
            parsed = decode(data, limit=MAX_ANSWER_BYTES, what="the overseer's answer")
        except WireError as err:
            if status >= 500:
                raise OverseerUnavailable(self.url, f"HTTP {status}") from err
            raise OverseerError(f"overseer {self.url}: {err} (HTTP {status})") from err
        if status != 200:
            message = parsed.get("error")
            text = message if isinstance(message, str) else f"HTTP {status}"
            if status >= 500:
                raise OverseerUnavailable(self.url, text)
            raise OverseerRefused(self.url, status, text)
        try:
            return answer_from_json(parsed)
        except WireError as err:
            raise OverseerError(f"overseer {self.url} sent a malformed answer: {err}") from err

    def _exchange(
        self,
        conn: http.client.HTTPSConnection,
        method: str,
        endpoint: str,
        body: dict[str, Any] | None,
    ) -> tuple[int, bytes]:
        conn.connect()
        self._check_peer(conn)
        payload = None if body is None else encode(body)
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, self._root + endpoint, body=payload, headers=headers)
        response = conn.getresponse()
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            raise OverseerError(
                f"overseer {self.url}: answer of {declared} bytes is over the limit"
            )
        data = response.read(MAX_ANSWER_BYTES + 1)
        return response.status, data

    def _check_peer(self, conn: http.client.HTTPSConnection) -> None:
        sock = conn.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        if not der:
            raise OverseerUnavailable(self.url, "the peer presented no certificate")
        try:
            who = identity_of(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))
        except CertificateError as err:
            raise OverseerError(f"{self.url} is not a Fedra overseer: {err}") from err
        if who.role != "overseer":
            raise OverseerError(
                f"{self.url} is not the overseer: its certificate is for {who.name!r} "
                f"with role {who.role!r}"
            )
