"""Row H3, replayed against a real overseer process: connections without a certificate that
never finish their TLS handshake must not take the places of the servers that do.

At ``ed63e7f`` each new connection took one of the 64 serving slots before its handshake: 64
idle TCP connections (no certificate, nothing sent) took them all, the hot server's
heartbeat was closed unanswered and it lost its lease. The overseer now serves gRPC: its
handshakes run in gRPC's I/O threads and hold no serving thread, and one that has not
finished within HANDSHAKE_TIMEOUT seconds is closed (gRPC's own default is 120 s).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from fedra.overseer import (
    HANDSHAKE_TIMEOUT,
    MAX_CALLS,
    OverseerClient,
    OverseerUnavailable,
    ParticipantHeartbeat,
    ServerHeartbeat,
    ServerState,
    client_for_kit,
)
from fedra.pki import Identity, TlsFiles, create_ca, write_participant
from tests.e2e.conftest import wait_for
from tests.e2e.ha_federation import OVERSEER, HaFederation, make_ha_federation

#: Where the attacker's connections come from: another host than the servers (any 127/8
#: address is this machine on Linux).
ATTACKER = "127.0.0.2"


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaFederation]:
    """The provisioned HA project with only its overseer running."""
    fed = make_ha_federation(tmp_path_factory.mktemp("limits-ha"))
    try:
        fed.start(OVERSEER)
        wait_for(lambda: _answers(fed), 60, "the overseer to answer")
        yield fed
    finally:
        fed.stop_all()


def _answers(fed: HaFederation) -> bool:
    fed.check_alive()
    with contextlib.suppress(Exception):
        fed.overseer_state()
        return True
    return False


def overseer_port(fed: HaFederation) -> int:
    return next(iter(fed.proxies.values())).target_port


def server_beat(fed: HaFederation) -> bool:
    """server1's heartbeat, with its own kit: whether it is answered with the lease."""
    client = client_for_kit(fed.kits["server1"], timeout=3.0)
    answer = client.heartbeat(
        ServerHeartbeat("server1", "127.0.0.1", 1, 2, ServerState.READY, None)
    )
    return answer.holds_lease("server1")


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections from ATTACKER that never send a byte."""
    opened = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((ATTACKER, 0))
        sock.connect(("127.0.0.1", port))
        opened.append(sock)
    return opened


def closed_by_the_overseer(sock: socket.socket, deadline: float) -> bool:
    """Whether the overseer closes ``sock`` (which never sent a byte) before ``deadline``."""
    sock.settimeout(max(0.0, deadline - time.monotonic()))
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_without_a_certificate_do_not_take_the_servers_places(
    ha: HaFederation,
) -> None:
    assert server_beat(ha)  # server1 is hot and holds the lease
    opened = time.monotonic()
    idle = idle_connections(overseer_port(ha), 4 * MAX_CALLS)
    try:
        for _ in range(3):  # the lease is kept while they hang on
            assert server_beat(ha)
        site = client_for_kit(ha.kits["site-1"], timeout=3.0)
        assert site.heartbeat(ParticipantHeartbeat("site-1")).hot is not None
        # ... and the overseer drops every one of them once the handshake timeout is over.
        deadline = opened + HANDSHAKE_TIMEOUT + 5.0
        still_open = [s for s in idle if not closed_by_the_overseer(s, deadline)]
        assert not still_open, f"{len(still_open)} idle connections still open"
        assert server_beat(ha)
        ha.check_alive()
    finally:
        for sock in idle:
            sock.close()


def test_a_certificate_of_another_ca_is_refused_and_logged(
    ha: HaFederation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger = write_participant(
        tmp_path_factory.mktemp("stranger"),
        create_ca("another-project"),
        Identity("admin@central.org", "central", "project_admin"),
        file_stem="p",
    )
    ca = TlsFiles.in_dir(ha.kits["server1"] / "startup", "server").ca  # trusts the overseer
    client = OverseerClient(
        client_for_kit(ha.kits["server1"]).url,
        TlsFiles(ca=ca, cert=stranger.cert, key=stranger.key),
        timeout=3.0,
    )
    with pytest.raises(OverseerUnavailable, match=r"TLS failed"):
        client.state()
    wait_for(
        lambda: (
            "refused a TLS connection" in ha.log(OVERSEER)
            and "CERTIFICATE_VERIFY_FAILED" in ha.log(OVERSEER)
        ),
        10,
        "the overseer to log the refusal",
    )
    assert server_beat(ha)
