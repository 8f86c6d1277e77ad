"""What only the in-memory transport does, and the bounded pipe under both transports."""

from __future__ import annotations

import pytest
from transport_helpers import Worker

from fedra.core import FedraError
from fedra.transport import ConnectError, Connection, MemoryServer, PeerIdentity, memory_connect
from fedra.transport._pipe import Pipe
from fedra.wire import Envelope


def test_memory_server_hands_over_connections_and_identities() -> None:
    accepted: list[Connection] = []
    server = MemoryServer(accepted.append, identity=PeerIdentity("hub", "org-0", "server"))
    client = memory_connect(server, "site-2", "org-2", "client")
    assert client.peer == PeerIdentity("hub", "org-0", "server")
    assert [conn.peer for conn in accepted] == [PeerIdentity("site-2", "org-2", "client")]
    assert server.connections == accepted
    client.close()
    assert server.connections == []


def test_envelopes_travel_as_objects() -> None:
    accepted: list[Connection] = []
    client = memory_connect(MemoryServer(accepted.append), "s", "o", "client")
    envelope = Envelope("x", {"a": [1, 2]})
    client.send(envelope)
    assert accepted[0].recv(timeout=1) is envelope


def test_on_connect_can_refuse_a_memory_connection() -> None:
    def refuse(conn: Connection) -> None:
        raise FedraError("unknown site")

    with pytest.raises(ConnectError, match="unknown site"):
        memory_connect(MemoryServer(refuse), "s", "o", "client")


def test_a_stopped_memory_server_refuses() -> None:
    server = MemoryServer(lambda conn: None)
    server.stop()
    with pytest.raises(ConnectError, match="stopped"):
        memory_connect(server, "s", "o", "client")


def test_pipe_finish_drains_then_ends() -> None:
    pipe: Pipe[int] = Pipe(2)
    assert pipe.put(1) and pipe.put(2)
    pipe.finish("done")
    assert not pipe.put(3)
    assert [pipe.get(), pipe.get(), pipe.get()] == [1, 2, None]
    assert pipe.ended and pipe.reason == "done"


def test_pipe_close_drops_and_wakes_a_blocked_put() -> None:
    pipe: Pipe[int] = Pipe(1)
    assert pipe.put(1)
    blocked = Worker(lambda: pipe.put(2))
    pipe.close("gone")
    assert blocked.join() is False
    assert pipe.get() is None
    assert pipe.reason == "gone"


def test_pipe_get_times_out_and_stays_usable() -> None:
    pipe: Pipe[str] = Pipe(1)
    with pytest.raises(TimeoutError):
        pipe.get(timeout=0.01)
    with pytest.raises(TimeoutError):
        pipe.get(timeout=0)
    pipe.put("a")
    assert pipe.get(timeout=0) == "a"


def test_pipe_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Pipe(0)


def test_an_acknowledged_pipe_is_empty_once_its_taker_is_done() -> None:
    # A stream's outgoing frames: one gRPC has taken is in flight until it asks for the next.
    pipe: Pipe[str] = Pipe(2, acknowledged=True)
    pipe.put("frame")
    assert pipe.get() == "frame"
    assert not pipe.wait_empty(timeout=0)  # taken, not sent yet
    waiter = Worker(lambda: pipe.wait_empty(timeout=30))
    pipe.done()
    assert waiter.join() is True
    assert pipe.wait_empty(timeout=0)


def test_an_ended_acknowledged_pipe_does_not_keep_a_drain_waiting() -> None:
    pipe: Pipe[str] = Pipe(1, acknowledged=True)
    pipe.put("frame")
    assert pipe.get() == "frame"
    waiter = Worker(lambda: pipe.wait_empty(timeout=30))
    pipe.close("the stream ended")  # its frame never gets acknowledged
    assert waiter.join() is True


def test_a_plain_pipe_is_empty_once_everything_is_taken() -> None:
    pipe: Pipe[str] = Pipe(1)
    pipe.put("frame")
    assert not pipe.wait_empty(timeout=0)
    assert pipe.get() == "frame"
    assert pipe.wait_empty(timeout=0)
