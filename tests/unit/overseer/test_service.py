"""The overseer over real gRPC with mutual TLS on a free 127.0.0.1 port, with real certs."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from fedra.overseer import (
    MAX_REQUEST_BYTES,
    JsonStateFile,
    OverseerClient,
    OverseerError,
    OverseerRefused,
    OverseerService,
    OverseerUnavailable,
    ParticipantHeartbeat,
    ServerState,
)
from fedra.overseer.wire import NONCE_BYTES, NONCE_KEY
from fedra.pki import TlsFiles
from tests.unit.overseer.conftest import FAST, Pki, beat

Start = Callable[..., OverseerService]


@pytest.fixture
def start(pki: Pki) -> Iterator[Start]:
    """Start overseer services (stopped at the end of the test, even when it fails)."""
    started: list[OverseerService] = []

    def run(**kw: object) -> OverseerService:
        kw.setdefault("settings", FAST)
        service = OverseerService(kw.pop("tls", pki.overseer), **kw)  # type: ignore[arg-type]
        started.append(service)
        service.start()
        return service

    try:
        yield run
    finally:
        for service in started:
            service.stop()


def client(service: OverseerService, tls: TlsFiles, timeout: float = 5.0) -> OverseerClient:
    return OverseerClient(service.url, tls, timeout=timeout)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def raw(
    service: OverseerService, tls: TlsFiles, path: str, body: bytes, *, nonce: bool = True
) -> tuple[grpc.StatusCode, str]:
    """One call with any path and body; the gRPC status and its details."""
    ca, cert, key = tls.load()
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    metadata = ((NONCE_KEY, os.urandom(NONCE_BYTES)),) if nonce else ()
    with grpc.secure_channel(f"127.0.0.1:{service.port}", credentials) as channel:
        try:
            channel.unary_unary(path)(body, timeout=5, metadata=metadata)
        except grpc.RpcError as err:
            return err.code(), err.details()
    return grpc.StatusCode.OK, ""


def test_first_server_to_heartbeat_is_elected(start: Start, pki: Pki) -> None:
    service = start()
    before = time.monotonic()
    first = client(service, pki.server1).heartbeat(beat("server1"))
    assert first.hot is not None and first.hot.name == "server1"
    assert first.hot.address == "server1:8002:8003"
    assert first.ssid == 1
    assert first.lease is not None and first.lease.deadline is not None
    assert before + FAST.lease <= first.lease.deadline <= time.monotonic() + FAST.lease
    assert first.heartbeat_interval == FAST.heartbeat_interval
    second = client(service, pki.server2).heartbeat(beat("server2", port=9002))
    assert second.hot == first.hot and second.ssid == 1 and second.lease is None
    assert [(s.info.name, s.hot, s.state) for s in second.servers] == [
        ("server1", True, ServerState.READY),
        ("server2", False, ServerState.READY),
    ]
    site = client(service, pki.site).heartbeat(ParticipantHeartbeat("site-1"))
    assert site.hot == first.hot and site.ssid == 1 and site.lease is None


def test_silent_hot_server_is_replaced_by_the_standby(start: Start, pki: Pki) -> None:
    service = start()
    hot, standby = client(service, pki.server1), client(service, pki.server2)
    sent = time.monotonic()
    assert hot.heartbeat(beat("server1")).holds_lease("server1")
    standby.heartbeat(beat("server2"))
    promoted_at: list[float] = []

    def standby_is_hot() -> bool:
        answer = standby.heartbeat(beat("server2"))
        if answer.holds_lease("server2"):
            promoted_at.append(time.monotonic())
            assert answer.ssid == 2
            return True
        assert answer.hot is not None and answer.hot.name == "server1"
        return False

    wait_for(standby_is_hot, 10 * FAST.promotion_delay, "the standby to be promoted")
    # Never before the old lease (plus margin) has surely run out.
    assert promoted_at[0] - sent >= FAST.lease + FAST.lease_margin
    back = hot.heartbeat(beat("server1", ServerState.HOT))
    assert back.hot is not None and back.hot.name == "server2" and back.lease is None


def test_promote_by_a_project_admin_and_refusals(start: Start, pki: Pki) -> None:
    service = start()
    client(service, pki.server1).heartbeat(beat("server1"))
    client(service, pki.server2).heartbeat(beat("server2"))
    with pytest.raises(OverseerRefused) as err:
        client(service, pki.site).promote("server2")
    assert err.value.status == 403
    assert "site-1 (org hospital) has role 'client'" in err.value.message
    assert "must be project_admin" in err.value.message
    with pytest.raises(OverseerRefused, match=r"role 'lead'") as err:
        client(service, pki.lead).promote("server2")
    assert err.value.status == 403
    with pytest.raises(OverseerRefused, match=r"unknown server 'server9'") as err:
        client(service, pki.admin).promote("server9")
    assert err.value.status == 404
    state = client(service, pki.admin).promote("server2")
    assert state.hot is not None and state.hot.name == "server2" and state.ssid == 2
    assert client(service, pki.server1).heartbeat(beat("server1")).lease is None


def test_state_is_for_admins_only(start: Start, pki: Pki) -> None:
    service = start()
    client(service, pki.server1).heartbeat(beat("server1"))
    client(service, pki.site).heartbeat(ParticipantHeartbeat("site-1"))
    client(service, pki.lead).heartbeat(ParticipantHeartbeat("lead@acme.org"))
    state = client(service, pki.lead).state()
    assert state.hot is not None and state.hot.name == "server1"
    assert [(p.name, p.org, p.role) for p in state.participants] == [
        ("lead@acme.org", "acme", "lead"),
        ("site-1", "hospital", "client"),
    ]
    for tls in (pki.site, pki.server1):
        with pytest.raises(OverseerRefused, match=r"to read the overseer's state") as err:
            client(service, tls).state()
        assert err.value.status == 403


def test_a_certificate_from_another_ca_is_refused_at_tls(start: Start, pki: Pki) -> None:
    service = start()
    with pytest.raises(OverseerUnavailable, match=r"TLS failed|Socket closed|reset"):
        client(service, pki.stranger).state()
    # The overseer is still serving everyone else.
    assert client(service, pki.admin).state().ssid is None


def test_the_client_refuses_a_peer_that_is_not_the_overseer(start: Start, pki: Pki) -> None:
    impostor = start(tls=pki.server1)  # a server's certificate, valid for 127.0.0.1
    with pytest.raises(OverseerError, match=r"is not the overseer: .* role 'server'"):
        client(impostor, pki.admin).state()


def test_the_client_refuses_a_peer_that_shows_the_overseer_certificate_without_its_key(
    start: Start, pki: Pki
) -> None:
    impostor = start(tls=pki.server1)
    impostor._cert_pem = pki.overseer.cert.read_bytes()  # public; the key stays the server's
    with pytest.raises(OverseerError, match=r"is not the overseer: the answer is not signed by"):
        client(impostor, pki.admin).state()


def test_the_client_checks_the_overseer_certificate(start: Start, pki: Pki) -> None:
    service = start()
    # The stranger's CA file holds another project's CA: the overseer is not trusted.
    lost = TlsFiles(ca=pki.stranger_ca, cert=pki.admin.cert, key=pki.admin.key)
    with pytest.raises(OverseerUnavailable, match=r"certificate failed verification: not issued"):
        client(service, lost).state()
    # Nor is an overseer reached at an address its certificate does not name.
    elsewhere = start(tls=pki.overseer_elsewhere)
    with pytest.raises(OverseerUnavailable, match=r"failed verification: it does not name '127"):
        client(elsewhere, pki.admin).state()


def test_unreachable_overseer(pki: Pki) -> None:
    service = OverseerService(pki.overseer, settings=FAST)
    service.start()
    url = service.url
    service.stop()
    with pytest.raises(OverseerUnavailable, match=r"is unavailable") as err:
        OverseerClient(url, pki.admin, timeout=2).state()
    assert err.value.hint is not None


NOT_JSON = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        ("/api/v1/heartbeat", b"{", NOT_JSON, "heartbeat body is not valid JSON"),
        ("/api/v1/heartbeat", b"[]", NOT_JSON, "heartbeat body: Expected `object`"),
        ("/api/v1/heartbeat", b'{"name":"site-1","x":1}', NOT_JSON, "unknown field `x`"),
        ("/api/v1/heartbeat", b'{"name":"site-2"}', grpc.StatusCode.PERMISSION_DENIED, "names"),
        ("/api/v1/promote", b'{"name":"s2"}', grpc.StatusCode.PERMISSION_DENIED, "role 'client'"),
        ("/api/v2/state", b"", grpc.StatusCode.NOT_FOUND, "no such call '/api/v2/state'"),
        (
            "/api/v1/heartbeat",
            json.dumps({"name": "x" * MAX_REQUEST_BYTES}).encode(),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "larger than max",
        ),
    ],
)
def test_malformed_requests(
    start: Start, pki: Pki, path: str, body: bytes, code: grpc.StatusCode, message: str
) -> None:
    service = start()
    got, details = raw(service, pki.site, path, body)
    assert got == code and message in details


def test_a_call_without_a_nonce_or_with_a_body_for_state_is_refused(start: Start, pki: Pki) -> None:
    service = start()
    got, details = raw(service, pki.site, "/api/v1/heartbeat", b'{"name":"site-1"}', nonce=False)
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "nonce of 32 bytes" in details
    got, details = raw(service, pki.admin, "/api/v1/state", b"{}")
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "takes no body" in details
    assert raw(service, pki.admin, "/api/v1/state", b"") == (grpc.StatusCode.OK, "")


def test_only_the_project_servers_may_register(start: Start, pki: Pki) -> None:
    service = start(servers=frozenset({"server1", "server2"}))
    with pytest.raises(OverseerRefused, match=r"rogue is not a server of this project") as err:
        client(service, pki.rogue_server).heartbeat(beat("rogue"))
    assert err.value.status == 403
    with pytest.raises(OverseerRefused, match=r"certificate is for 'server1'"):
        client(service, pki.server1).heartbeat(beat("server2"))
    assert client(service, pki.server1).heartbeat(beat("server1")).holds_lease("server1")


def test_a_restarted_overseer_keeps_ssid_and_hot_server(
    start: Start, pki: Pki, tmp_path: Path
) -> None:
    path = tmp_path / "overseer_state.json"
    first = start(store=JsonStateFile(path))
    client(first, pki.server1).heartbeat(beat("server1"))
    client(first, pki.server2).heartbeat(beat("server2"))
    client(first, pki.admin).promote("server2")
    wait_for(
        lambda: client(first, pki.server2).heartbeat(beat("server2")).holds_lease("server2"),
        10 * FAST.promotion_delay,
        "server2 to get its lease",
    )
    first.stop()
    second = start(store=JsonStateFile(path))
    state = client(second, pki.admin).state()
    assert state.ssid == 2 and state.hot is not None and state.hot.name == "server2"
    assert [s.info.name for s in state.servers] == ["server1", "server2"]
    assert all(s.last_seen is None for s in state.servers)  # not heard since the restart
    # The lease holder renews at once; the other server stays standby.
    assert client(second, pki.server2).heartbeat(beat("server2")).holds_lease("server2")
    answer = client(second, pki.server1).heartbeat(beat("server1"))
    assert answer.lease is None and answer.ssid == 2


def test_a_state_that_cannot_be_saved_is_not_answered(
    start: Start, pki: Pki, tmp_path: Path
) -> None:
    class Failing(JsonStateFile):
        fail = True

        def save(self, state: object) -> None:  # type: ignore[override]
            if self.fail:
                raise OSError(28, "No space left on device")
            super().save(state)  # type: ignore[arg-type]

    store = Failing(tmp_path / "state.json")
    service = start(store=store)
    with pytest.raises(OverseerUnavailable, match=r"cannot save its state"):
        client(service, pki.server1).heartbeat(beat("server1"))
    store.fail = False
    answer = client(service, pki.server1).heartbeat(beat("server1"))
    assert answer.holds_lease("server1") and answer.ssid == 1
    saved = store.load()
    assert saved is not None and saved.hot == "server1" and saved.lease_holder == "server1"


def test_many_clients_at_once(start: Start, pki: Pki) -> None:
    import concurrent.futures

    service = start()
    calls = [pki.site, pki.admin, pki.lead] * 10
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda tls: client(service, tls).heartbeat(
                    ParticipantHeartbeat(
                        {pki.site: "site-1", pki.admin: "admin@acme.org"}.get(tls, "lead@acme.org")
                    )
                ),
                calls,
            )
        )
    assert len(answers) == 30 and all(a.ssid is None for a in answers)
    assert len(client(service, pki.admin).state().participants) == 3


def test_tls_is_mutual_a_client_without_certificate_is_refused(start: Start, pki: Pki) -> None:
    service = start()
    credentials = grpc.ssl_channel_credentials(pki.ca.cert_pem)  # no certificate of its own
    with (
        grpc.secure_channel(f"127.0.0.1:{service.port}", credentials) as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        channel.unary_unary("/api/v1/state")(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_silent_connection_does_not_hold_up_others(start: Start, pki: Pki) -> None:
    import socket

    service = start()
    idle = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    try:  # connected, but never starts its TLS handshake
        started = time.monotonic()
        assert client(service, pki.admin).state().ssid is None
        assert time.monotonic() - started < 2.0
    finally:
        idle.close()


def test_revoked_peers_are_refused_and_logged(
    start: Start, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    from fedra.overseer import ParticipantHeartbeat

    caplog.set_level(logging.WARNING, logger="fedra.overseer")
    service = start(revoked=frozenset({"server2", "site-1"}))
    with pytest.raises(OverseerRefused, match=r"server2 is revoked in this project") as err:
        client(service, pki.server2).heartbeat(beat("server2"))
    assert err.value.status == 403
    with pytest.raises(OverseerRefused, match=r"site-1 is revoked in this project"):
        client(service, pki.site).heartbeat(ParticipantHeartbeat("site-1"))
    line = "refused server2 (server, acme): /api/v1/heartbeat: server2 is revoked"
    assert line in caplog.text
    assert client(service, pki.server1).heartbeat(beat("server1")).holds_lease("server1")
    assert [s.info.name for s in service.election.state().servers] == ["server1"]


def test_only_the_project_admins_are_answered(start: Start, pki: Pki) -> None:
    from fedra.overseer import ParticipantHeartbeat

    service = start(admins=frozenset({("admin@acme.org", "acme", "project_admin")}))
    with pytest.raises(OverseerRefused, match=r"lead@acme.org \(lead, acme\) is not an admin"):
        client(service, pki.lead).state()
    assert client(service, pki.admin).state().ssid is None
    client(service, pki.site).heartbeat(ParticipantHeartbeat("site-1"))  # not an admin: passes


def test_a_revoked_certificate_is_refused_by_its_fingerprint(start: Start, pki: Pki) -> None:
    from fedra.pki import identity_of

    fingerprint = identity_of(pki.server2.cert.read_bytes()).fingerprint
    service = start(revoked=frozenset({f"sha256:{fingerprint}"}))
    with pytest.raises(OverseerRefused, match=r"server2 \(certificate sha256:\w+…\) is revoked"):
        client(service, pki.server2).heartbeat(beat("server2"))
    assert client(service, pki.server1).heartbeat(beat("server1")).holds_lease("server1")
