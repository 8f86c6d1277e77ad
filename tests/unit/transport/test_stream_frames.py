"""How a StreamConnection cuts envelopes into frames: a small message in one frame (a frame
costs both ends a gRPC message and a wake-up of each reading thread), a big one with its
head in frames of its own (a receiver judges it from a small first frame)."""

from __future__ import annotations

import threading

import numpy as np

from fedra.core import FLModel
from fedra.transport import PeerIdentity
from fedra.transport._frames import FRAME_SIZE
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport._stream import StreamConnection
from fedra.wire import Envelope, prepare_envelope

PEER = PeerIdentity("site-1", "org", "client")


def _frames_of(envelope: Envelope) -> list[pb.Frame]:
    """The frames ``send`` queues for ``envelope`` (the connection then closes)."""
    conn = StreamConnection(PEER)
    conn.send(envelope)
    conn.close()  # queued frames still go out, then the stream ends
    return [pb.Frame.FromString(frame) for frame in conn.outgoing()]


def _received(frames: list[pb.Frame]) -> Envelope:
    """What a connection receives from ``frames`` (its reader thread moves them in)."""
    conn = StreamConnection(PEER)
    reader = threading.Thread(target=conn.pump, args=(frames,), daemon=True)
    reader.start()
    try:
        return conn.recv(timeout=10)
    finally:
        conn.close()
        reader.join(10)


def test_a_small_message_with_a_model_goes_in_one_frame() -> None:
    model = FLModel(params={"w": np.arange(9, dtype=np.float32).reshape(3, 3)})
    envelope = Envelope("result", {"job_id": "j1", "task_id": "t1"}, model)
    frames = _frames_of(envelope)
    assert len(frames) == 1
    assert frames[0].total == prepare_envelope(envelope).nbytes == len(frames[0].data)
    assert frames[0].last
    got = _received(frames)
    assert got.kind == "result" and got.headers == envelope.headers
    assert got.model is not None and got.model.params is not None
    np.testing.assert_array_equal(got.model.params["w"], model.params["w"])  # type: ignore[index]


def test_a_big_message_sends_its_head_in_a_frame_of_its_own() -> None:
    model = FLModel(params={"w": np.ones(FRAME_SIZE // 4 + 1, dtype=np.float32)})
    envelope = Envelope("result", {"job_id": "j1"}, model)
    encoded = prepare_envelope(envelope)
    frames = _frames_of(envelope)
    assert frames[0].data == encoded.head and frames[0].total == encoded.nbytes
    assert len(frames) == 3 and frames[-1].last and not frames[0].last
    got = _received(frames)
    assert got.model is not None and got.model.params is not None
    np.testing.assert_array_equal(got.model.params["w"], model.params["w"])  # type: ignore[index]
