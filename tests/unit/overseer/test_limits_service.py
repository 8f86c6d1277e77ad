"""The overseer authenticates before it serves (row H3): handshakes are bounded in time and
hold no serving thread, calls are bounded in all and per identity, idle connections close,
and every refusal of the overseer's own is logged."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from fedra.overseer import (
    OverseerClient,
    OverseerService,
    OverseerUnavailable,
    ParticipantHeartbeat,
    Reply,
)
from fedra.overseer import service as service_module
from fedra.overseer.wire import NONCE_BYTES, NONCE_KEY
from fedra.pki import Identity, TlsFiles
from tests.unit.overseer.conftest import FAST, Pki


@pytest.fixture
def start(pki: Pki) -> Iterator[Callable[[], OverseerService]]:
    """Start an overseer (after the test's monkeypatches); stopped at the end."""
    started: list[OverseerService] = []

    def run() -> OverseerService:
        service = OverseerService(pki.overseer, settings=FAST)
        started.append(service)
        service.start()
        return service

    try:
        yield run
    finally:
        for service in started:
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


def test_unauthenticated_connections_do_not_take_the_serving_threads(
    start: Callable[[], OverseerService], pki: Pki
) -> None:
    overseer = start()
    idle = silent(overseer.port, 4 * service_module.MAX_CALLS)
    try:
        began = time.monotonic()
        assert answered(overseer, pki.site, "site-1")
        assert time.monotonic() - began < 2.0
    finally:
        for sock in idle:
            sock.close()


def test_a_handshake_that_does_not_finish_in_time_is_dropped(
    start: Callable[[], OverseerService], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "HANDSHAKE_TIMEOUT", 0.3)
    overseer = start()
    (sock,) = silent(overseer.port, 1)
    try:
        sock.settimeout(5.0)  # gRPC's own default would wait 120 s
        assert sock.recv(1) == b""  # closed by the overseer
    finally:
        sock.close()


def test_an_idle_authenticated_connection_is_closed(
    start: Callable[[], OverseerService], pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "IDLE_TIMEOUT", 0.3)
    overseer = start()
    ca, cert, key = pki.admin.load()
    states: list[grpc.ChannelConnectivity] = []
    with grpc.secure_channel(
        f"127.0.0.1:{overseer.port}", grpc.ssl_channel_credentials(ca, key, cert)
    ) as channel:
        metadata = ((NONCE_KEY, os.urandom(NONCE_BYTES)),)
        channel.unary_unary("/api/v1/state")(b"", timeout=5, metadata=metadata)
        channel.subscribe(states.append)
        # The client itself keeps a channel for 30 min: the overseer's GOAWAY idles it.
        wait_until(lambda: grpc.ChannelConnectivity.IDLE in states)
        channel.unsubscribe(states.append)


class Blocked:
    """Holds every call of ``name`` inside the API until released."""

    def __init__(self, service: OverseerService, name: str) -> None:
        self.release = threading.Event()
        self.inside = 0
        self._lock = threading.Lock()
        handle = service.api.handle

        def held(path: str, who: Identity, body: bytes) -> Reply:
            if who.name == name:
                with self._lock:
                    self.inside += 1
                self.release.wait(10)
            return handle(path, who, body)

        service.api.handle = held  # type: ignore[method-assign]


def calls_at_once(
    service: OverseerService, tls: TlsFiles, name: str, count: int
) -> tuple[list[threading.Thread], list[Exception]]:
    failures: list[Exception] = []

    def call() -> None:
        try:
            answered(service, tls, name)
        except OverseerUnavailable as err:
            failures.append(err)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, failures


def test_one_identity_cannot_take_every_thread(
    start: Callable[[], OverseerService], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fedra.overseer")
    overseer = start()
    blocked = Blocked(overseer, "admin@acme.org")
    limit = service_module.MAX_PER_IDENTITY
    threads, failures = calls_at_once(overseer, pki.admin, "admin@acme.org", limit + 2)
    try:
        wait_until(lambda: len(failures) == 2 and blocked.inside == limit)
        assert all("8 calls of that identity are being served" in str(f) for f in failures)
        assert answered(overseer, pki.site, "site-1")  # another identity is served
        assert "refused a call of admin@acme.org (project_admin) from ipv4:127.0.0.1" in (
            caplog.text
        )
    finally:
        blocked.release.set()
        for thread in threads:
            thread.join()
    assert len(failures) == 2  # the held calls were answered once released


def test_calls_beyond_the_limit_are_refused_at_once(
    start: Callable[[], OverseerService], pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_CALLS", 4)
    overseer = start()
    blocked = Blocked(overseer, "admin@acme.org")
    threads, failures = calls_at_once(overseer, pki.admin, "admin@acme.org", 6)
    try:
        wait_until(lambda: len(failures) == 2 and blocked.inside == 4)
        assert all("Concurrent RPC limit exceeded" in str(f) for f in failures)
    finally:
        blocked.release.set()
        for thread in threads:
            thread.join()
