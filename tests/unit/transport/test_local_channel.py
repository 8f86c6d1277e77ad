"""LocalChannel over a socketpair and over a real Unix domain socket."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel, WireError
from fedra.transport import ChannelClosed, LocalChannel, accept_channel, connect_unix, listen_unix
from fedra.wire import Envelope, encode_envelope

Pair = tuple[LocalChannel, LocalChannel]


class Worker:
    """Runs ``fn`` in a thread and hands its result or exception back to the test."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as err:
            self.error = err

    def join(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "worker thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def socketpair_channels() -> Pair:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return LocalChannel(a), LocalChannel(b)


@pytest.fixture(params=["socketpair", "unix"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    if request.param == "socketpair":
        left, right = socketpair_channels()
    else:
        with listen_unix(tmp_path / "c.sock") as listener:
            left = connect_unix(tmp_path / "c.sock", timeout=10)
            right = accept_channel(listener, timeout=10)
    yield left, right
    left.close()
    right.close()


def test_round_trip(pair: Pair) -> None:
    left, right = pair
    model = FLModel(
        params={"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array(1.5)},
        metrics={"loss": 0.25},
        meta={"num_samples": 8},
        current_round=1,
        total_rounds=3,
    )
    left.send(Envelope("task", {"task_id": "t1", "site": "site-1"}, model))
    left.send(Envelope("ping"))
    got = right.recv(timeout=10)
    assert got.kind == "task"
    assert got.headers == {"task_id": "t1", "site": "site-1"}
    assert got.model is not None
    assert got.model.params is not None
    np.testing.assert_array_equal(got.model.params["w"], model.params["w"])  # type: ignore[index]
    assert got.model.params["w"].flags.writeable
    assert got.model.metrics == {"loss": 0.25}
    assert right.recv(timeout=10) == Envelope("ping")
    right.send(Envelope("pong"))
    assert left.recv(timeout=10).kind == "pong"


def test_large_model(pair: Pair) -> None:
    left, right = pair
    rng = np.random.default_rng(0)
    params = {
        "big": rng.standard_normal(10_000_000).astype(np.float32),
        "also": rng.integers(0, 255, size=(1000, 10_000), dtype=np.uint8),
        "small": np.arange(5),
    }
    sender = Worker(lambda: left.send(Envelope("result", model=FLModel(params=params))))
    got = right.recv(timeout=60)
    sender.join()
    assert got.model is not None
    assert got.model.params is not None
    assert got.model.nbytes() == 50_000_040
    for name, array in params.items():
        np.testing.assert_array_equal(got.model.params[name], array)


def test_concurrent_senders_do_not_interleave() -> None:
    left, right = socketpair_channels()
    with left, right:
        payload = np.arange(50_000, dtype=np.int64)

        def send_many(sender: int) -> None:
            for i in range(20):
                model = FLModel(params={"x": payload + sender})
                left.send(Envelope("m", {"sender": sender, "i": i}, model))

        workers = [Worker(lambda s=s: send_many(s)) for s in range(4)]
        seen: dict[int, list[int]] = {s: [] for s in range(4)}
        for _ in range(80):
            env = right.recv(timeout=30)
            sender = env.headers["sender"]
            seen[sender].append(env.headers["i"])
            assert env.model is not None
            assert env.model.params is not None
            np.testing.assert_array_equal(env.model.params["x"], payload + sender)
        for worker in workers:
            worker.join()
        assert seen == {s: list(range(20)) for s in range(4)}


def test_eof_raises_channel_closed(pair: Pair) -> None:
    left, right = pair
    left.close()
    with pytest.raises(ChannelClosed, match="peer closed"):
        right.recv(timeout=10)
    assert right.closed
    with pytest.raises(ChannelClosed):
        right.recv()
    with pytest.raises(ChannelClosed):
        left.send(Envelope("late"))


def test_send_to_a_closed_peer_raises_channel_closed() -> None:
    a, b = socket.socketpair()
    channel = LocalChannel(a)
    b.close()
    with pytest.raises(ChannelClosed, match="broke while sending"):
        channel.send(Envelope("x", model=FLModel(params={"a": np.zeros(1 << 20)})))
    assert channel.closed


def test_eof_in_the_middle_of_a_message() -> None:
    a, b = socket.socketpair()
    channel = LocalChannel(a)
    frame = encode_envelope(Envelope("x"))
    b.sendall(struct.pack("<Q", len(frame)) + frame[:5])
    b.close()
    with pytest.raises(ChannelClosed, match="middle of a message"):
        channel.recv(timeout=10)


def test_oversized_length_prefix_is_rejected_before_allocating() -> None:
    a, b = socket.socketpair()
    channel = LocalChannel(a, max_frame=1024)
    with b:
        b.sendall(struct.pack("<Q", 2**62))
        with pytest.raises(WireError, match="above the limit of 1024"):
            channel.recv(timeout=10)
    assert channel.closed


def test_send_above_max_frame_is_refused_locally() -> None:
    a, b = socket.socketpair()
    with LocalChannel(a, max_frame=100) as channel, b:
        with pytest.raises(WireError, match="the channel allows 100"):
            channel.send(Envelope("x", model=FLModel(params={"a": np.zeros(100)})))
        assert not channel.closed


def test_malformed_frame_leaves_the_channel_usable() -> None:
    a, b = socket.socketpair()
    channel = LocalChannel(a)
    with channel, b:
        b.sendall(struct.pack("<Q", 12) + b"not a frame!")
        with pytest.raises(WireError, match="bad magic"):
            channel.recv(timeout=10)
        frame = encode_envelope(Envelope("ok"))
        b.sendall(struct.pack("<Q", len(frame)) + frame)
        assert channel.recv(timeout=10).kind == "ok"


def test_recv_timeout_leaves_the_channel_usable(pair: Pair) -> None:
    left, right = pair
    with pytest.raises(TimeoutError):
        right.recv(timeout=0.01)
    assert not right.closed
    left.send(Envelope("late"))
    assert right.recv(timeout=10).kind == "late"


def test_stall_in_the_middle_of_a_message_closes_the_channel() -> None:
    a, b = socket.socketpair()
    channel = LocalChannel(a)
    with b:
        b.sendall(struct.pack("<Q", 64) + b"FDRA")
        with pytest.raises(ChannelClosed, match="timed out in the middle"):
            channel.recv(timeout=0.05)
    assert channel.closed


def test_close_wakes_a_blocked_receiver() -> None:
    left, right = socketpair_channels()
    with left:
        receiver = Worker(right.recv)
        right.close()
        with pytest.raises(ChannelClosed):
            receiver.join()


def test_accept_timeout(tmp_path: Path) -> None:
    with listen_unix(tmp_path / "a.sock") as listener, pytest.raises(TimeoutError):
        accept_channel(listener, timeout=0.01)


def test_connect_to_nobody(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        connect_unix(tmp_path / "missing.sock", timeout=1)


def test_listen_on_an_existing_path_fails(tmp_path: Path) -> None:
    path = tmp_path / "b.sock"
    with listen_unix(path), pytest.raises(OSError):
        listen_unix(path)


def test_huge_timeout_is_accepted(pair: Pair) -> None:
    left, right = pair
    left.send(Envelope("now"))
    assert right.recv(timeout=1e12).kind == "now"
