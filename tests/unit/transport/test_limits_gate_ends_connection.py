"""A gate that ends the connection: a message judged at its first frame, never buffered."""

from __future__ import annotations

import numpy as np
import pytest
from certs_helper import Federation
from transport_helpers import open_link

from fedra.core import FLModel
from fedra.transport import ChannelClosed, MessageRefused, TransportServer
from fedra.wire import Envelope


def test_a_refused_message_ends_the_connection_with_the_reason(federation: Federation) -> None:
    seen: list[tuple[int, str]] = []

    def check(total: int, head: bytes) -> None:
        seen.append((total, bytes(head[:4]).hex()))
        if total > 100_000:
            raise MessageRefused(f"refused: {total} bytes is too big", ends_connection=True)

    link = open_link("grpc", federation)
    assert isinstance(link.server, TransportServer)
    try:
        link.server_end.set_gate(check)  # before the client sends anything
        link.client.send(Envelope("small", {"n": 1}))
        assert link.server_end.recv(timeout=5).kind == "small"
        big = FLModel(params={"x": np.zeros(1 << 20, dtype=np.uint8)})  # 4 frames of data
        with pytest.raises(ChannelClosed):
            link.client.send(Envelope("big", {}, big))
            link.client.recv(timeout=5)  # the send may fit in the pipes before the abort arrives
        with pytest.raises(ChannelClosed):
            link.server_end.recv(timeout=5)
        # asked once per message, at its first frame: no work for the frames that follow
        assert len(seen) == 2 and seen[1][0] > 1 << 20
        link.client.close()
    finally:
        link.server.stop(0.1)


def test_the_client_learns_why(federation: Federation) -> None:
    def refuse(total: int, head: bytes) -> None:
        raise MessageRefused("refused: no messages here", ends_connection=True)

    link = open_link("grpc", federation)
    assert isinstance(link.server, TransportServer)
    try:
        link.server_end.set_gate(refuse)
        link.client.send(Envelope("any", {}))
        with pytest.raises(ChannelClosed, match="refused: no messages here"):
            link.client.recv(timeout=5)
    finally:
        link.server.stop(0.1)
