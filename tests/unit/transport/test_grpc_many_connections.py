"""A gRPC server sized for many peers serves them all at once, and refuses one more."""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor

import pytest

from fedra.transport import ConnectError, Connection, TransportServer, connect
from fedra.wire import Envelope
from tests.unit.transport.certs_helper import Federation

PEERS = 80  # more than the 64 a server parent used to serve, whatever its project's size


def test_a_server_sized_for_more_than_64_peers_serves_them_all_and_refuses_one_more(
    federation: Federation,
) -> None:
    accepted: queue.Queue[Connection] = queue.Queue()
    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=accepted.put,
        max_workers=PEERS,
    )
    port = server.start()

    def open_one(_: int) -> Connection:
        return connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
            timeout=30.0,
        )

    clients: list[Connection] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            clients = list(pool.map(open_one, range(PEERS)))
        assert len(server.connections) == PEERS
        with pytest.raises(ConnectError, match="RESOURCE_EXHAUSTED"):
            clients.append(open_one(PEERS))
        # Every one of them is served: a message each way on each connection.
        ends = [accepted.get_nowait() for _ in range(PEERS)]
        for index, client in enumerate(clients):
            client.send(Envelope("ping", {"i": index}))
        for end in ends:
            got = end.recv(timeout=10.0)
            end.send(Envelope("pong", dict(got.headers)))
        answers = sorted(int(c.recv(timeout=10.0).headers["i"]) for c in clients)  # type: ignore[call-overload]
        assert answers == list(range(PEERS))
    finally:
        for client in clients:
            client.close()
        server.stop(grace=0.5)
