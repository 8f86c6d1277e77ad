"""The contract of a Connection, run over the gRPC transport (mutual TLS) and the in-memory one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from transport_helpers import SERVER_ID, SITE_ID, Link, Worker

from fedra.core import FLModel
from fedra.transport import ChannelClosed, Connection
from fedra.wire import Envelope


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
