"""A gate that ends the connection: a message judged at its first frame, never buffered."""

from __future__ import annotations

import queue

import numpy as np
import pytest
from certs_helper import Federation

from fedra.core import FLModel
from fedra.transport import ChannelClosed, Connection, MessageRefused, TransportServer, connect
from fedra.wire import Envelope


def test_a_refused_message_ends_the_connection_with_the_reason(federation: Federation) -> None:
    seen: list[tuple[int, str]] = []
    accepted: queue.Queue[Connection] = queue.Queue()

    def check(total: int, head: bytes) -> None:
        seen.append((total, bytes(head[:4]).hex()))
        if total > 100_000:
            raise MessageRefused(f"refused: {total} bytes is too big", ends_connection=True)

    def on_connect(conn: Connection) -> None:
        conn.set_gate(check)
        accepted.put(conn)

    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=on_connect,
    )
    port = server.start()
    try:
        client = connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
        )
        server_end = accepted.get(timeout=5)
        client.send(Envelope("small", {"n": 1}))
        assert server_end.recv(timeout=5).kind == "small"
        big = FLModel(params={"x": np.zeros(1 << 20, dtype=np.uint8)})  # 4 frames of data
        with pytest.raises(ChannelClosed):
            client.send(Envelope("big", {}, big))
            client.recv(timeout=5)  # the send may fit in the pipes before the abort arrives
        with pytest.raises(ChannelClosed):
            server_end.recv(timeout=5)
        # asked once per message, at its first frame: no work for the frames that follow
        assert len(seen) == 2 and seen[1][0] > 1 << 20
        client.close()
    finally:
        server.stop(0.1)


def test_the_client_learns_why(federation: Federation) -> None:
    def refuse(total: int, head: bytes) -> None:
        raise MessageRefused("refused: no messages here", ends_connection=True)

    def on_connect(conn: Connection) -> None:
        conn.set_gate(refuse)

    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=on_connect,
    )
    port = server.start()
    try:
        client = connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
        )
        client.send(Envelope("any", {}))
        with pytest.raises(ChannelClosed, match="refused: no messages here"):
            client.recv(timeout=5)
    finally:
        server.stop(0.1)
