"""What keeps a relaying server small: receive gates, shared broadcast frames, head peeking."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from certs_helper import Federation
from transport_helpers import Worker

from fedra.core import FLModel
from fedra.transport import Connection, SharedBody, TransportServer, connect
from fedra.wire import Envelope, encode_envelope, peek_head

BIG = 3 << 20  # bytes of the test model: above the gate's threshold, several frames


def model(seed: int) -> FLModel:
    rng = np.random.default_rng(seed)
    return FLModel(params={"w": rng.standard_normal(BIG // 4).astype(np.float32)})


@dataclass
class Gated:
    """A server whose connections share one receive slot for messages above 1 MiB."""

    server: TransportServer
    port: int
    slot: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))
    accepted: queue.Queue[Connection] = field(default_factory=queue.Queue)
    asked: list[tuple[int, tuple[str, dict[str, object]] | None]] = field(default_factory=list)

    def gate(self, total: int, head: bytes) -> threading.Semaphore | None:
        self.asked.append((total, peek_head(head)))
        return self.slot if total > (1 << 20) else None

    def client(self, federation: Federation) -> Connection:
        return connect(
            f"127.0.0.1:{self.port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
        )


@pytest.fixture
def gated(federation: Federation) -> Iterator[Gated]:
    holder: list[Gated] = []

    def on_connect(conn: Connection) -> None:
        conn.set_gate(holder[0].gate)
        holder[0].accepted.put(conn)

    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=on_connect,
    )
    holder.append(Gated(server, server.start()))
    try:
        yield holder[0]
    finally:
        server.stop(grace=0.2)


def test_a_gate_lets_one_big_message_in_at_a_time(gated: Gated, federation: Federation) -> None:
    with gated.client(federation) as a, gated.client(federation) as b:
        end_a, end_b = gated.accepted.get(timeout=10), gated.accepted.get(timeout=10)
        # A send returns once its frames are on their way: a big message waits for the
        # receiver to read, so each is sent from a thread of its own.
        sending_a = Worker(lambda: a.send(Envelope("big", {"from": "a"}, model(1))))
        got_a = end_a.recv(timeout=30)
        sending_a.join()
        sending_b = Worker(
            lambda: [
                b.send(Envelope("big", {"from": "b"}, model(2))),
                b.send(Envelope("small", {"from": "b"})),
            ]
        )
        # A's message holds the slot until A's receiver asks for its next message.
        with pytest.raises(TimeoutError):
            end_b.recv(timeout=0.5)
        # B is not silent while its message waits at the gate (the server does not read it).
        mark = time.monotonic()
        assert end_b.last_heard >= mark
        assert got_a.headers == {"from": "a"}
        with pytest.raises(TimeoutError):
            end_a.recv(timeout=0.05)  # A is done with its message: the slot goes to B
        got_b = end_b.recv(timeout=30)
        assert got_b.model is not None and got_b.model.params is not None
        np.testing.assert_array_equal(got_b.model.params["w"], model(2).params["w"])  # type: ignore[index]
        assert end_b.recv(timeout=30).kind == "small"
        sending_b.join()
        # The gate saw each message's size and could read its kind and headers from the head.
        big_total = len(encode_envelope(Envelope("big", {"from": "a"}, model(1))))
        assert (big_total, ("big", {"from": "a"})) in gated.asked
        assert any(found == ("small", {"from": "b"}) for _, found in gated.asked)


def test_closing_a_connection_gives_its_slot_back(gated: Gated, federation: Federation) -> None:
    with gated.client(federation) as a:
        end_a = gated.accepted.get(timeout=10)
        sending = Worker(lambda: a.send(Envelope("big", {}, model(3))))
        end_a.recv(timeout=30)
        sending.join()
        assert not gated.slot.acquire(blocking=False)  # held while the message is handled
        end_a.close()
        assert gated.slot.acquire(timeout=5)


def test_a_shared_body_reaches_every_connection_with_its_own_headers(
    gated: Gated, federation: Federation
) -> None:
    with gated.client(federation) as a, gated.client(federation) as b:
        ends = [gated.accepted.get(timeout=10), gated.accepted.get(timeout=10)]
        sent = model(4)
        shared = SharedBody(Envelope("task", {}, sent), readers=2, size=1 << 20)
        assert shared.count == 3
        workers = [
            Worker(lambda e=end, i=i: e.send_shared(Envelope("task", {"to": i}, sent), shared))
            for i, end in enumerate(ends)
        ]
        for i, client in enumerate((a, b)):
            env = client.recv(timeout=30)
            assert env.kind == "task" and env.headers == {"to": i}
            assert env.model is not None and env.model.params is not None
            np.testing.assert_array_equal(env.model.params["w"], sent.params["w"])  # type: ignore[index]
        for worker in workers:
            worker.join()
        assert shared._frames == {} and shared._left == {}


def test_shared_frames_are_encoded_once_and_dropped_when_all_readers_left() -> None:
    shared = SharedBody(Envelope("task", {}, model(5)), readers=3, size=1 << 20)
    first = shared.take(0)
    assert shared.take(0) is first  # the same bytes for every reader, not a copy each
    shared.leave(0)  # the third reader never sends: frame 0 is no longer waited for
    assert 0 not in shared._frames
    for index in range(1, shared.count):
        shared.take(index)
    shared.leave(1)  # the second reader stops after frame 0
    assert shared._frames == {} and shared._left == {}


def test_peek_head_reads_kind_and_headers_from_the_first_bytes_only() -> None:
    frame = encode_envelope(Envelope("result", {"job_id": "j1", "n": 2}, model(6)))
    assert peek_head(frame[:200]) == ("result", {"job_id": "j1", "n": 2})
    assert peek_head(frame[:8]) is None  # the header is not all there
    assert peek_head(b"\x00" * 64) is None  # not a frame
    assert peek_head(b"") is None
