"""Pieces of the gRPC transport on their own: the Frame encoding, names, certificate checks."""

from __future__ import annotations

import pytest
from certs_helper import Federation, make_ca, make_cert

from fedra.transport._identity import check_server_cert
from fedra.transport._proto import fedra_transport_pb2 as pb
from fedra.transport._stream import METHOD, SERVICE, encode_frame
from fedra.transport.grpc_client import split_target


@pytest.mark.parametrize(
    ("total", "data", "last"),
    [(0, b"", False), (5, b"hello", True), (1 << 40, b"x" * 300, False), (0, bytes(200), True)],
)
def test_encode_frame_is_the_protobuf_encoding(total: int, data: bytes, last: bool) -> None:
    expected = pb.Frame(total=total, data=data, last=last).SerializeToString()
    assert encode_frame(memoryview(data), total=total, last=last) == expected


def test_the_method_is_the_one_in_the_proto() -> None:
    service = pb.DESCRIPTOR.services_by_name["Fedra"]
    assert service.full_name == SERVICE
    assert f"/{service.full_name}/{service.methods_by_name['Connect'].name}" == METHOD


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:8002", ("localhost", 8002)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]:8002", ("::1", 8002)),
        ("dns:///fl.example.org:443", ("fl.example.org", 443)),
        ("unix:/tmp/x.sock", None),
        ("localhost", None),
    ],
)
def test_split_target(target: str, expected: tuple[str, int] | None) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("fl.example.org", False),
    ],
)
def test_server_certificate_names(federation: Federation, host: str, expected: bool) -> None:
    if expected:
        identity = check_server_cert(federation.server.cert, federation.ca.cert, host)
        assert identity.name == "server"
    else:
        with pytest.raises(ValueError, match="does not name"):
            check_server_cert(federation.server.cert, federation.ca.cert, host)


def test_an_announced_certificate_from_another_ca_is_refused(federation: Federation) -> None:
    other_ca, other_key = make_ca("elsewhere")
    impostor = make_cert(other_ca, other_key, "server", "org-0", "server", server=True)
    with pytest.raises(ValueError, match="not issued by the CA"):
        check_server_cert(impostor.cert, federation.ca.cert, "localhost")
