"""The overseer authenticates before it serves (row H3): handshakes are bounded in time and
per address, serving slots per identity, and every refusal is logged."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import pytest

from fedra.overseer import OverseerClient, OverseerService, ParticipantHeartbeat, client_context
from fedra.overseer import service as service_module
from fedra.pki import TlsFiles
from tests.unit.overseer.conftest import FAST, Pki


@pytest.fixture
def overseer(pki: Pki) -> Iterator[OverseerService]:
    service = OverseerService(pki.overseer, settings=FAST)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def answered(service: OverseerService, tls: TlsFiles, name: str) -> bool:
    client = OverseerClient(service.url, tls, timeout=3.0)
    return client.heartbeat(ParticipantHeartbeat(name)).ssid is None


def silent(port: int, count: int, source: str = "127.0.0.2") -> list[socket.socket]:
    opened = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        opened.append(sock)
    return opened


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_unauthenticated_connections_do_not_take_the_serving_slots(
    overseer: OverseerService, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    idle = silent(overseer.port, service_module.MAX_CONNECTIONS + 8)
    try:
        assert answered(overseer, pki.site, "site-1")
        wait_until(lambda: "16 TLS handshakes from that address" in caplog.text)
    finally:
        for sock in idle:
            sock.close()


def test_a_handshake_that_does_not_finish_in_time_is_dropped_and_logged(
    overseer: OverseerService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service_module, "HANDSHAKE_TIMEOUT", 0.3)
    (sock,) = silent(overseer.port, 1)
    try:
        sock.settimeout(5.0)
        assert sock.recv(1) == b""  # closed by the overseer
    finally:
        sock.close()
    wait_until(lambda: "refused a connection from 127.0.0.2: TLS handshake failed" in caplog.text)


def authenticated_idle(service: OverseerService, tls: TlsFiles, count: int) -> list[ssl.SSLSocket]:
    context = client_context(tls)
    opened = []
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", service.port), timeout=5)
        opened.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
    return opened


def test_one_identity_cannot_take_every_slot(
    overseer: OverseerService, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    held = authenticated_idle(overseer, pki.admin, service_module.MAX_PER_IDENTITY + 2)
    try:
        assert answered(overseer, pki.site, "site-1")  # another identity is served
        wait_until(lambda: "8 connections of that identity are being served" in caplog.text)
        assert "admin@acme.org (project_admin)" in caplog.text
    finally:
        for sock in held:
            sock.close()
