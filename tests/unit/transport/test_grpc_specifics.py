"""What only the gRPC transport does: mutual TLS, size limits on the wire, the Frame encoding."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from certs_helper import Federation, Pem, make_ca, make_cert
from transport_helpers import SITE_ID, Worker, open_link

from fedra.core import FedraError, FLModel, WireError
from fedra.transport import (
    ChannelClosed,
    ConnectError,
    Connection,
    ListenError,
    TransportServer,
    connect,
    grpc_client,
)
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport._stream import FRAME_SIZE, METHOD
from fedra.wire import Envelope, encode_envelope


def raw_connect(channel: grpc.Channel) -> Any:
    """The Connect method of ``channel`` without Fedra's client: Frames in, Frames out."""
    return channel.stream_stream(
        METHOD,
        request_serializer=pb.Frame.SerializeToString,
        response_deserializer=pb.Frame.FromString,
    )


class Served:
    """A started TransportServer and the connections its on_connect received."""

    def __init__(self, federation: Federation, **kwargs: int) -> None:
        self.accepted: queue.Queue[Connection] = queue.Queue()
        self.server = TransportServer(
            "127.0.0.1",
            0,
            ca_pem=federation.ca.cert,
            cert_pem=federation.server.cert,
            key_pem=federation.server.key,
            on_connect=self.accepted.put,
            **kwargs,
        )
        self.port = self.server.start()
        self.target = f"127.0.0.1:{self.port}"


@pytest.fixture
def served(federation: Federation) -> Iterator[Served]:
    running = Served(federation)
    yield running
    running.server.stop(grace=0.2)


def connect_as(
    served: Served,
    ca: Pem,
    client: Pem,
    *,
    server_name: str | None = None,
    timeout: float = 10.0,
) -> Connection:
    return connect(
        served.target,
        ca_pem=ca.cert,
        cert_pem=client.cert,
        key_pem=client.key,
        server_name=server_name,
        timeout=timeout,
    )


def test_a_client_certificate_from_another_ca_is_refused(
    served: Served, federation: Federation
) -> None:
    other_ca, other_key = make_ca("intruders")
    intruder = make_cert(other_ca, other_key, "site-1", "org-1", "client")
    with pytest.raises(ConnectError, match="refused this client's certificate"):
        connect_as(served, federation.ca, intruder, timeout=1.5)
    assert served.accepted.empty()
    assert served.server.connections == []


def test_a_client_without_a_certificate_is_refused(served: Served, federation: Federation) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=federation.ca.cert)
    with grpc.secure_channel(served.target, credentials) as channel:
        connect_call = raw_connect(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(connect_call(iter([pb.Frame(total=1, data=b"x", last=True)]), timeout=2))
    assert caught.value.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    assert served.accepted.empty()


def test_a_server_certificate_from_another_ca_is_refused(
    served: Served, federation: Federation
) -> None:
    other_ca, _ = make_ca("elsewhere")
    with pytest.raises(ConnectError, match="certificate is not trusted"):
        connect_as(served, other_ca, federation.site, timeout=1.5)
    assert served.accepted.empty()


def test_server_name_overrides_the_name_checked(served: Served, federation: Federation) -> None:
    conn = connect_as(served, federation.ca, federation.site, server_name="localhost")
    assert conn.peer.name == "server"
    conn.close()
    with pytest.raises(ConnectError, match=r"not valid for 'elsewhere\.example'"):
        connect_as(
            served, federation.ca, federation.site, server_name="elsewhere.example", timeout=1.5
        )


def test_an_unreachable_server_is_reported(federation: Federation) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectError, match="cannot reach"):
        connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
            timeout=1,
        )


def test_a_server_with_its_own_receive_window_takes_big_messages(federation: Federation) -> None:
    link = open_link("grpc", federation, receive_window=4 << 20)
    try:
        assert isinstance(link.server, TransportServer)
        assert dict(link.server._options)["grpc.http2.lookahead_bytes"] == 4 << 20
        model = FLModel(params={"w": np.arange(3 << 18, dtype=np.float32)})  # 3 MiB
        sending = Worker(lambda: link.client.send(Envelope("result", {"n": 1}, model)))
        got = link.server_end.recv(timeout=30)
        sending.join()
        assert got.model is not None and got.model.params is not None
        assert np.array_equal(got.model.params["w"], model.params["w"])  # type: ignore[index]
    finally:
        link.client.close()
        link.server.stop(grace=0.2)


def test_on_connect_can_refuse(federation: Federation) -> None:
    def refuse(conn: Connection) -> None:
        raise FedraError(f"{conn.peer.name} is not a member of this project")

    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=refuse,
    )
    port = server.start()
    try:
        with pytest.raises(ConnectError, match="site-1 is not a member of this project"):
            connect(
                f"localhost:{port}",
                ca_pem=federation.ca.cert,
                cert_pem=federation.site.cert,
                key_pem=federation.site.key,
            )
        assert server.connections == []
    finally:
        server.stop(grace=0.2)


def test_a_port_in_use_is_a_listen_error(served: Served, federation: Federation) -> None:
    second = TransportServer(
        "127.0.0.1",
        served.port,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=lambda conn: None,
    )
    with pytest.raises(ListenError, match=str(served.port)):
        second.start()


def test_an_oversize_message_is_refused_and_the_stream_closed(federation: Federation) -> None:
    link = open_link("grpc", federation, max_message=FRAME_SIZE + 100)
    try:
        big = Envelope("big", {}, FLModel(params={"w": np.ones(2 * FRAME_SIZE, np.uint8)}))
        sending = Worker(lambda: link.client.send(big))
        with pytest.raises(WireError, match="above the limit"):
            link.server_end.recv(timeout=30)
        assert link.server_end.closed
        with pytest.raises(ChannelClosed, match="above the limit"):
            link.client.recv(timeout=30)
        with contextlib.suppress(ChannelClosed):  # the frames may all have been queued
            sending.join()
        with pytest.raises(ChannelClosed):
            link.client.send(Envelope("more"))
    finally:
        link.client.close()
        link.server.stop(grace=0.2)


def test_a_huge_announced_size_is_refused_before_allocating(
    served: Served, federation: Federation
) -> None:
    credentials = grpc.ssl_channel_credentials(
        federation.ca.cert, federation.site.key, federation.site.cert
    )
    requests: queue.Queue[pb.Frame | None] = queue.Queue()
    requests.put(pb.Frame(total=1 << 60, data=b"FDRA"))
    with grpc.secure_channel(served.target, credentials) as channel:
        call = raw_connect(channel)(iter(requests.get, None))
        server_end = served.accepted.get(timeout=10)
        with pytest.raises(WireError, match=f"{1 << 60} bytes is above the limit"):
            server_end.recv(timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            list(call)
        requests.put(None)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "above the limit" in caught.value.details()


@pytest.mark.parametrize(
    "frames",
    [
        [pb.Frame(total=0, data=b"abc", last=True)],  # no size announced
        [pb.Frame(total=3, data=b"abcd", last=True)],  # longer than announced
        [pb.Frame(total=8, data=b"abcd", last=True)],  # ended early
        [pb.Frame(total=8, data=b"abcd"), pb.Frame(total=8, data=b"efgh", last=True)],
    ],
)
def test_malformed_frame_sequences_are_wire_errors(
    served: Served, federation: Federation, frames: list[pb.Frame]
) -> None:
    credentials = grpc.ssl_channel_credentials(
        federation.ca.cert, federation.site.key, federation.site.cert
    )
    requests: queue.Queue[pb.Frame | None] = queue.Queue()
    for frame in frames:
        requests.put(frame)
    with grpc.secure_channel(served.target, credentials) as channel:
        call = raw_connect(channel)(iter(requests.get, None))
        server_end = served.accepted.get(timeout=10)
        with pytest.raises(WireError):
            server_end.recv(timeout=10)
        assert server_end.closed
        with pytest.raises(grpc.RpcError) as caught:
            list(call)
        requests.put(None)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_generated_stub_interoperates(served: Served, federation: Federation) -> None:
    envelope = Envelope("hello", {"from": "stub"})
    data = encode_envelope(envelope)
    credentials = grpc.ssl_channel_credentials(
        federation.ca.cert, federation.site.key, federation.site.cert
    )
    requests: queue.Queue[pb.Frame | None] = queue.Queue()
    requests.put(pb.Frame(total=len(data), data=data[:5]))
    requests.put(pb.Frame(data=data[5:], last=True))
    with grpc.secure_channel(served.target, credentials) as channel:
        call = raw_connect(channel)(iter(requests.get, None))
        server_end = served.accepted.get(timeout=10)
        assert server_end.peer == SITE_ID
        assert server_end.recv(timeout=10) == envelope
        server_end.send(Envelope("welcome"))
        reply = next(call)
        welcome = encode_envelope(Envelope("welcome"))
        assert (reply.total, reply.data, reply.last) == (len(welcome), welcome, True)
        requests.put(None)
        assert list(call) == []


def test_stop_closes_the_open_connections(federation: Federation) -> None:
    link = open_link("grpc", federation)
    waiting = Worker(link.client.recv)
    link.server.stop(grace=0.5)
    with pytest.raises(ChannelClosed):
        waiting.join()
    assert link.server_end.closed


def _stub_stream(
    served: Served, federation: Federation
) -> tuple[Any, Any, queue.Queue[pb.Frame | None]]:
    """A channel and a Connect call made with the generated stub, fed from the queue."""
    credentials = grpc.ssl_channel_credentials(
        federation.ca.cert, federation.site.key, federation.site.cert
    )
    channel = grpc.secure_channel(served.target, credentials)
    requests: queue.Queue[pb.Frame | None] = queue.Queue()
    call = raw_connect(channel)(iter(requests.get, None))
    return channel, call, requests


def test_a_timeout_in_the_middle_of_a_message_keeps_what_arrived(
    served: Served, federation: Federation
) -> None:
    channel, call, requests = _stub_stream(served, federation)
    with channel:
        data = encode_envelope(Envelope("split", {"x": 1}))
        requests.put(pb.Frame(total=len(data), data=data[:10]))
        server_end = served.accepted.get(timeout=10)
        with pytest.raises(TimeoutError):
            server_end.recv(timeout=0.1)
        requests.put(pb.Frame(data=data[10:], last=True))
        assert server_end.recv(timeout=10) == Envelope("split", {"x": 1})
        requests.put(None)
        assert list(call) == []


def test_a_malformed_envelope_is_a_wire_error_and_the_connection_goes_on(
    served: Served, federation: Federation
) -> None:
    channel, call, requests = _stub_stream(served, federation)
    with channel:
        requests.put(pb.Frame(total=16, data=b"NOPE" * 4, last=True))
        server_end = served.accepted.get(timeout=10)
        with pytest.raises(WireError, match="magic"):
            server_end.recv(timeout=10)
        assert not server_end.closed
        data = encode_envelope(Envelope("fine"))
        requests.put(pb.Frame(total=len(data), data=data, last=True))
        assert server_end.recv(timeout=10) == Envelope("fine")
        requests.put(None)
        assert list(call) == []


def test_connect_waits_for_a_server_that_starts_later(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failed_once = threading.Event()
    diagnose = grpc_client._diagnose

    def diagnose_and_tell(*args: Any) -> tuple[str, bool]:
        result = diagnose(*args)
        failed_once.set()
        return result

    monkeypatch.setattr(grpc_client, "_diagnose", diagnose_and_tell)
    connecting = Worker(
        lambda: connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
            timeout=30,
        )
    )
    assert failed_once.wait(30), "the first attempt never failed"
    accepted: queue.Queue[Connection] = queue.Queue()
    server = TransportServer(
        "127.0.0.1",
        port,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=accepted.put,
    )
    assert server.start() == port
    try:
        client = connecting.join()
        assert client.peer.name == "server"
        assert accepted.get_nowait().peer == SITE_ID
        client.close()
    finally:
        server.stop(grace=0.2)
