"""Row H3, replayed against a real overseer process: connections without a certificate that
never finish their TLS handshake must not take the slots of the servers that do.

At ``ed63e7f`` each new connection took one of the 64 serving slots before its handshake: 64
idle TCP connections (no certificate, nothing sent) took them all, the hot server's
heartbeat was closed unanswered and it lost its lease. Now a connection does its handshake
first (5 s at most, 16 at once per address) and only then takes a slot.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.overseer import ParticipantHeartbeat, ServerHeartbeat, ServerState, client_for_kit
from tests.e2e.conftest import read, wait_for
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


def test_idle_connections_without_a_certificate_do_not_take_the_servers_slots(
    ha: HaFederation,
) -> None:
    assert server_beat(ha)  # server1 is hot and holds the lease
    idle = idle_connections(overseer_port(ha), 64)
    try:
        for _ in range(3):  # the lease is kept while they hang on
            assert server_beat(ha)
        site = client_for_kit(ha.kits["site-1"], timeout=3.0)
        assert site.heartbeat(ParticipantHeartbeat("site-1")).hot is not None
        ha.check_alive()
    finally:
        for sock in idle:
            sock.close()
    log = read(Path(ha.kits[OVERSEER]) / "log.txt")
    assert f"refused a connection from {ATTACKER}: 16 TLS handshakes" in log, log[-2000:]
