"""The contract of a Connection, run over every transport: gRPC (mutual TLS), in memory, local.

The optional hooks (gate, shared broadcast, drain, last_heard) are checked against what each
transport declares in its ``capabilities``: real work where declared, the documented default
where not.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from transport_helpers import SERVER_ID, SITE_ID, Link, Worker

from fedra.core import FLModel
from fedra.transport import ChannelClosed, Connection, MessageRefused, SharedBody
from fedra.wire import Envelope, peek_head


def model_envelope(kind: str = "task", size: int = 12, **headers: Any) -> Envelope:
    model = FLModel(
        params={
            "w": np.arange(size, dtype=np.float32),
            "b": np.array([1.5, -2.0]),
            "n": np.arange(6, dtype=np.int64).reshape(2, 3),
        },
        metrics={"loss": 0.25},
        meta={"num_samples": 8},
        current_round=1,
        total_rounds=3,
    )
    return Envelope(kind, dict(headers), model)


def check_model(got: Envelope, sent: Envelope) -> None:
    assert got.kind == sent.kind
    assert got.headers == sent.headers
    assert got.model is not None and sent.model is not None
    assert got.model.params is not None and sent.model.params is not None
    assert got.model.params.keys() == sent.model.params.keys()
    for name, array in sent.model.params.items():
        np.testing.assert_array_equal(got.model.params[name], array)
        assert got.model.params[name].dtype == array.dtype
    assert got.model.metrics == sent.model.metrics
    assert got.model.meta == sent.model.meta
    assert got.model.current_round == 1
    assert got.model.total_rounds == 3


def receive(conn: Connection, count: int) -> list[Envelope]:
    return [conn.recv(timeout=60) for _ in range(count)]


def test_round_trip_with_and_without_model(link: Link) -> None:
    task = model_envelope("task", task_id="t1", site="site-1")
    link.server_end.send(task)
    link.server_end.send(Envelope("ping", {"n": 1}))
    got = link.client.recv(timeout=10)
    check_model(got, task)
    ping = link.client.recv(timeout=10)
    assert ping == Envelope("ping", {"n": 1})
    assert ping.model is None

    result = model_envelope("result", task_id="t1")
    link.client.send(result)
    link.client.send(Envelope("heartbeat"))
    check_model(link.server_end.recv(timeout=10), result)
    assert link.server_end.recv(timeout=10) == Envelope("heartbeat")


def test_both_directions_concurrently(link: Link) -> None:
    count = 20
    # 6 MB models: more than one frame each, so both directions stream frames at once.
    size = 1_500_000

    def send_all(conn: Connection, kind: str) -> None:
        for i in range(count):
            conn.send(model_envelope(kind, size=size, seq=i))

    senders = [
        Worker(lambda: send_all(link.client, "up")),
        Worker(lambda: send_all(link.server_end, "down")),
    ]
    receivers = [
        Worker(lambda: receive(link.server_end, count)),
        Worker(lambda: receive(link.client, count)),
    ]
    for worker in senders:
        worker.join()
    up, down = (worker.join() for worker in receivers)
    for kind, got in (("up", up), ("down", down)):
        assert [env.headers["seq"] for env in got] == list(range(count))
        for env in got:
            check_model(env, model_envelope(kind, size=size, seq=env.headers["seq"]))


def test_peer_identity_on_both_ends(link: Link) -> None:
    assert link.client.peer == SERVER_ID
    assert link.server_end.peer == SITE_ID


def test_recv_timeout_keeps_the_connection_usable(link: Link) -> None:
    with pytest.raises(TimeoutError):
        link.client.recv(timeout=0.05)
    with pytest.raises(TimeoutError):
        link.server_end.recv(timeout=0)
    assert not link.client.closed
    link.client.send(Envelope("after-timeout"))
    assert link.server_end.recv(timeout=10).kind == "after-timeout"
    link.server_end.send(Envelope("reply"))
    assert link.client.recv(timeout=10).kind == "reply"


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_ends_the_peer_recv_after_what_was_sent(link: Link, closer: str) -> None:
    ends = {"client": link.client, "server": link.server_end}
    closing, other = ends[closer], ends["server" if closer == "client" else "client"]
    closing.send(Envelope("last-words", {"i": 1}))
    closing.close()
    assert closing.closed
    assert other.recv(timeout=10) == Envelope("last-words", {"i": 1})
    with pytest.raises(ChannelClosed):
        other.recv(timeout=10)
    assert other.closed
    with pytest.raises(ChannelClosed):
        other.send(Envelope("too-late"))


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_wakes_a_blocked_peer_recv(link: Link, closer: str) -> None:
    ends = {"client": link.client, "server": link.server_end}
    closing, other = ends[closer], ends["server" if closer == "client" else "client"]
    waiting = Worker(other.recv)
    closing.close()
    with pytest.raises(ChannelClosed):
        waiting.join()


def test_close_is_idempotent_and_wakes_local_calls(link: Link) -> None:
    waiting = Worker(link.client.recv)
    link.client.close()
    link.client.close()
    assert link.client.closed
    with pytest.raises(ChannelClosed):
        waiting.join()
    with pytest.raises(ChannelClosed):
        link.client.recv(timeout=1)
    with pytest.raises(ChannelClosed):
        link.client.send(Envelope("x"))


def test_close_wakes_a_send_blocked_by_back_pressure(link: Link) -> None:
    # Nobody reads on the server: the sender blocks once the buffers are full.
    big = model_envelope("big", size=50_000_000)

    def flood() -> None:
        for _ in range(10):
            link.client.send(big)

    flooding = Worker(flood)
    link.client.close()
    with pytest.raises(ChannelClosed):
        flooding.join()


def test_peer_close_wakes_a_send_blocked_by_back_pressure(link: Link) -> None:
    big = model_envelope("big", size=50_000_000)

    def flood() -> None:
        for _ in range(10):
            link.client.send(big)

    flooding = Worker(flood)
    link.server_end.close()
    with pytest.raises(ChannelClosed):
        flooding.join()


def test_many_messages_arrive_in_order(link: Link) -> None:
    count = 2000
    receiving = Worker(lambda: receive(link.server_end, count))
    for i in range(count):
        link.client.send(Envelope("seq", {"i": i}))
    got = receiving.join()
    assert [env.headers["i"] for env in got] == list(range(count))


def test_concurrent_senders_never_interleave(link: Link) -> None:
    per_sender, senders = 10, 4
    size = 1_200_000  # about 5 MB: two frames each

    def send_some(who: int) -> None:
        for i in range(per_sender):
            link.client.send(model_envelope("part", size=size, who=who, i=i))

    receiving = Worker(lambda: receive(link.server_end, per_sender * senders))
    workers = [Worker(lambda who=who: send_some(who)) for who in range(senders)]
    for worker in workers:
        worker.join()
    got = receiving.join()
    for who in range(senders):
        mine = [env.headers["i"] for env in got if env.headers["who"] == who]
        assert mine == list(range(per_sender))
    for env in got:
        check_model(env, model_envelope("part", size=size, **env.headers))


def test_a_50_mb_model(link: Link) -> None:
    size = 12_500_000  # float32: 50 MB, every value exact
    sent = model_envelope("big", size=size)
    receiving = Worker(lambda: link.server_end.recv(timeout=60))
    link.client.send(sent)
    check_model(receiving.join(), sent)


class RecordingBroadcast:
    """A broadcast that is not the gRPC transport's: every connection just leaves it."""

    def __init__(self) -> None:
        self.left: list[int] = []

    def leave(self, index: int = 0) -> None:
        self.left.append(index)


def test_send_shared_delivers_the_envelope_and_counts_as_one_reader(link: Link) -> None:
    sent = model_envelope("task", size=300_000, to=1)  # more than one shared frame
    body = SharedBody(Envelope("task", {}, sent.model), readers=1, size=1 << 18)
    # A big send returns once the peer reads (a local channel buffers little): from a thread.
    sending = Worker(lambda: link.server_end.send_shared(sent, body))
    check_model(link.client.recv(timeout=30), sent)
    sending.join()
    assert body._frames == {}  # every frame taken or left: none kept
    other = RecordingBroadcast()
    sending = Worker(lambda: link.server_end.send_shared(Envelope("task", {"to": 2}), other))
    assert link.client.recv(timeout=30).headers == {"to": 2}
    sending.join()
    assert other.left == [0]  # a foreign broadcast is left once, the envelope sent whole


def test_drain_and_last_heard_as_declared(link: Link) -> None:
    caps = link.client.capabilities
    before = time.monotonic()
    sending = Worker(lambda: link.server_end.send(model_envelope("task", size=100_000)))
    link.client.recv(timeout=30)
    sending.join()
    assert link.server_end.drain(timeout=30)  # it was all read: nothing left queued
    if caps.last_heard:
        assert link.client.last_heard >= before
    else:
        assert link.client.last_heard == 0.0  # "never": callers keep their own clock
    if not caps.drain:
        assert link.client.drain(timeout=0) is True  # no queues: at once


def test_a_gate_judges_each_message_at_its_head_where_declared(link: Link) -> None:
    asked: list[tuple[int, str | None]] = []
    slot = threading.Semaphore(1)

    def gate(total: int, head: bytes) -> threading.Semaphore | None:
        found = peek_head(head)
        kind = None if found is None else found[0]
        asked.append((total, kind))
        if kind == "bad":
            raise MessageRefused("not this one")
        return slot if total > 1 << 20 else None

    link.server_end.set_gate(gate)  # before any traffic
    big = model_envelope("big", size=500_000)  # 2 MB: holds the slot
    sending = Worker(
        lambda: [link.client.send(e) for e in (Envelope("bad", {"n": 1}), big, Envelope("small"))]
    )
    if link.server_end.capabilities.gate:
        check_model(link.server_end.recv(timeout=30), big)  # "bad" was refused at its head
        assert not slot.acquire(blocking=False)  # the big message holds it until the next recv
        assert link.server_end.recv(timeout=30).kind == "small"
        assert slot.acquire(blocking=False)  # given back when the next message was asked for
        assert [kind for _, kind in asked] == ["bad", "big", "small"]
        assert asked[1][0] > 2_000_000  # the declared size, before the body arrived
    else:
        # Messages arrive whole: the gate is never asked (the documented default).
        assert link.server_end.recv(timeout=30).kind == "bad"
        check_model(link.server_end.recv(timeout=30), big)
        assert link.server_end.recv(timeout=30).kind == "small"
        assert asked == [] and slot.acquire(blocking=False)
    sending.join()
    assert not link.server_end.closed


def test_a_gate_may_end_the_connection_where_declared(link: Link) -> None:
    def gate(total: int, head: bytes) -> None:
        if total > 1 << 20:
            raise MessageRefused("refused: too big here", ends_connection=True)

    link.server_end.set_gate(gate)
    link.client.send(Envelope("small", {"n": 1}))
    assert link.server_end.recv(timeout=30).kind == "small"
    big = model_envelope("big", size=500_000)
    if not link.server_end.capabilities.gate:
        sending = Worker(lambda: link.client.send(big))
        check_model(link.server_end.recv(timeout=30), big)  # never consulted
        sending.join()
        return
    with pytest.raises(ChannelClosed):
        link.client.send(big)
        link.client.recv(timeout=30)  # the send may fit in the pipes before the end arrives
    with pytest.raises(ChannelClosed):
        link.server_end.recv(timeout=30)
