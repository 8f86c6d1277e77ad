"""A refused TCP connection: retried by default (a server starting), at once final on request."""

from __future__ import annotations

import socket
import time

import pytest
from certs_helper import Federation

from fedra.transport import ConnectError, connect


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_fails_at_once_without_retry(federation: Federation) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        connect(
            f"127.0.0.1:{_closed_port()}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
            timeout=60,
            retry_refused=False,
        )
    assert time.monotonic() - started < 20  # not the 60 s timeout
    assert "nothing listens on that port" in str(caught.value)
    assert "gave up" not in str(caught.value)


def test_a_refused_connection_is_retried_until_the_timeout_by_default(
    federation: Federation,
) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectError, match=r"gave up after 1\.5 s"):
        connect(
            f"127.0.0.1:{_closed_port()}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
            timeout=1.5,
        )
    assert time.monotonic() - started >= 1.4
