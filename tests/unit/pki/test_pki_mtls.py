"""The certificates work for real mutual TLS with OpenSSL through Python's :mod:`ssl`.

The handshake runs over in-memory BIOs (no sockets, as unit tests require): the same OpenSSL
verification a socket or gRPC channel would do, byte for byte, with strict X.509 checks on.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from fedra.pki import CertKey, Identity, TlsFiles, identity_of, write_participant

SERVER = Identity("server", "lead-org", "server")
SITE = Identity("site-1", "hospital-a", "client")
HOSTS = ("localhost", "127.0.0.1")


def server_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=files.ca)
    return ctx


def client_context(files: TlsFiles, *, with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server and its host name
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if with_cert:
        ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=files.ca)
    return ctx


class Pair:
    """A TLS client and server joined by memory buffers instead of a socket."""

    def __init__(self, server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
        self.bios = [ssl.MemoryBIO() for _ in range(4)]
        c_in, c_out, s_in, s_out = self.bios
        self.client = client.wrap_bio(c_in, c_out, server_hostname=hostname)
        self.server = server.wrap_bio(s_in, s_out, server_side=True)
        self.failed: str | None = None  # the side whose handshake raised

    def pump(self) -> None:
        c_in, c_out, s_in, s_out = self.bios
        s_in.write(c_out.read())
        c_in.write(s_out.read())

    def handshake(self) -> None:
        """Run both sides until done; an error on either side propagates."""
        done = {"client": False, "server": False}
        for _ in range(20):
            for side, obj in (("client", self.client), ("server", self.server)):
                if not done[side]:
                    try:
                        obj.do_handshake()
                        done[side] = True
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLError:
                        self.failed = side
                        raise
            self.pump()
            if all(done.values()):
                return
        raise AssertionError(f"handshake did not finish: {done}")

    def exchange(self) -> bytes:
        """Send bytes from client to server and back; what the client read."""
        self.client.write(b"ping")
        self.pump()
        assert self.server.read() == b"ping"
        self.server.write(b"pong")
        self.pump()
        return self.client.read()


@pytest.fixture
def server_files(tmp_path: Path, ca: CertKey) -> TlsFiles:
    return write_participant(tmp_path / "server", ca, SERVER, file_stem="server", hosts=HOSTS)


@pytest.fixture
def client_files(tmp_path: Path, ca: CertKey) -> TlsFiles:
    return write_participant(tmp_path / "site-1", ca, SITE, file_stem="client")


@pytest.mark.parametrize("hostname", HOSTS)
def test_mutual_tls_succeeds_and_carries_identities(
    server_files: TlsFiles, client_files: TlsFiles, hostname: str
) -> None:
    pair = Pair(server_context(server_files), client_context(client_files), hostname)
    pair.handshake()
    assert pair.exchange() == b"pong"
    client_der = pair.server.getpeercert(binary_form=True)
    server_der = pair.client.getpeercert(binary_form=True)
    assert client_der is not None and server_der is not None
    assert identity_of(ssl.DER_cert_to_PEM_cert(client_der).encode()) == SITE
    assert identity_of(ssl.DER_cert_to_PEM_cert(server_der).encode()) == SERVER


def test_server_refuses_a_client_from_another_ca(
    tmp_path: Path, server_files: TlsFiles, other_ca: CertKey
) -> None:
    foreign = write_participant(tmp_path / "intruder", other_ca, SITE, file_stem="client")
    # The intruder trusts the real CA, so only the server's check can stop it.
    foreign = TlsFiles(ca=server_files.ca, cert=foreign.cert, key=foreign.key)
    pair = Pair(server_context(server_files), client_context(foreign), "localhost")
    with pytest.raises(ssl.SSLError, match="certificate verify failed"):
        pair.handshake()
    assert pair.failed == "server"


def test_server_refuses_a_client_without_certificate(
    server_files: TlsFiles, client_files: TlsFiles
) -> None:
    pair = Pair(
        server_context(server_files), client_context(client_files, with_cert=False), "localhost"
    )
    with pytest.raises(ssl.SSLError, match=r"PEER_DID_NOT_RETURN_A_CERTIFICATE|certificate"):
        pair.handshake()
    assert pair.failed == "server"


def test_client_refuses_a_server_from_another_ca(
    tmp_path: Path, client_files: TlsFiles, other_ca: CertKey
) -> None:
    rogue = write_participant(tmp_path / "rogue", other_ca, SERVER, file_stem="server", hosts=HOSTS)
    rogue = TlsFiles(ca=client_files.ca, cert=rogue.cert, key=rogue.key)
    pair = Pair(server_context(rogue), client_context(client_files), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        pair.handshake()
    assert pair.failed == "client"


def test_client_refuses_a_server_for_another_host(
    server_files: TlsFiles, client_files: TlsFiles
) -> None:
    pair = Pair(server_context(server_files), client_context(client_files), "fl.example.org")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname mismatch"):
        pair.handshake()
    assert pair.failed == "client"


def test_a_site_certificate_cannot_serve(tmp_path: Path, ca: CertKey) -> None:
    # A site's certificate lacks serverAuth: it cannot impersonate the server.
    site_as_server = write_participant(tmp_path / "s", ca, SITE, file_stem="server", hosts=HOSTS)
    client = write_participant(tmp_path / "c", ca, Identity("site-2", "o", "client"), file_stem="c")
    pair = Pair(server_context(site_as_server), client_context(client), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate purpose"):
        pair.handshake()
    assert pair.failed == "client"
