"""A gate refuses a message from its head: its body is skipped, the connection lives."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from certs_helper import Federation
from transport_helpers import Worker

from fedra.core import FLModel
from fedra.transport import Connection, MessageRefused, TransportServer, connect
from fedra.wire import Envelope, peek_head

BIG = 3 << 20


@pytest.fixture
def refusing(federation: Federation) -> Iterator[tuple[int, queue.Queue[Connection], list[str]]]:
    accepted: queue.Queue[Connection] = queue.Queue()
    refused: list[str] = []

    def gate(total: int, head: bytes) -> threading.Semaphore | None:
        found = peek_head(head)
        if found is not None and found[0] == "bad":
            refused.append(f"{total}")
            raise MessageRefused("not this one")
        return None

    def on_connect(conn: Connection) -> None:
        conn.set_gate(gate)
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
        yield port, accepted, refused
    finally:
        server.stop(grace=0.2)


def test_a_refused_message_is_skipped_and_the_next_one_arrives(
    refusing: tuple[int, queue.Queue[Connection], list[str]], federation: Federation
) -> None:
    port, accepted, refused = refusing
    client = connect(
        f"127.0.0.1:{port}",
        ca_pem=federation.ca.cert,
        cert_pem=federation.site.cert,
        key_pem=federation.site.key,
    )
    with client:
        end = accepted.get(timeout=10)
        big = FLModel(params={"w": np.ones(BIG // 4, np.float32)})
        sending = Worker(
            lambda: [
                client.send(Envelope("bad", {"n": 1}, big)),
                client.send(Envelope("good", {"n": 2}, big)),
                client.send(Envelope("bad", {"n": 3})),
                client.send(Envelope("small", {"n": 4})),
            ]
        )
        got = end.recv(timeout=30)
        assert got.kind == "good" and got.headers == {"n": 2}
        assert got.model is not None and got.model.params is not None
        assert float(got.model.params["w"].sum()) == BIG // 4
        assert end.recv(timeout=30).kind == "small"
        sending.join()
        assert len(refused) == 2 and not end.closed
