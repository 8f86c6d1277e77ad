"""Physical limits of this machine, so that each figure reads as a fraction of one.

* memory copy bandwidth: ``np.copyto`` of a ``nbytes`` array into another (both already
  touched), the best of a few copies;
* a bare TLS stream over loopback: Python's ``ssl`` over a TCP socket pair on 127.0.0.1
  (TLS 1.3, a self-signed ECDSA certificate), one thread sending ``nbytes`` in 256 KiB chunks
  (the fastest size here),
  one receiving into a preallocated buffer; plain TCP the same way for reference.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MB = 10**6
CHUNK = 256 * 2**10


def memcpy_mbps(nbytes: int = 1000 * MB, copies: int = 3) -> float:
    """MB/s of copying an ``nbytes`` array (best of ``copies``; pages touched first)."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.zeros(nbytes, dtype=np.uint8)
    dst[:] = 2  # touch every page: only the copy itself is timed
    best = float("inf")
    for _ in range(copies):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return nbytes / best / MB


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def stream_mbps(nbytes: int = 500 * MB, tls: bool = True) -> float:
    """MB/s of one ``nbytes`` stream over loopback (TLS or plain TCP), sender to receiver."""
    with tempfile.TemporaryDirectory(prefix="fedra-limits-") as tmp:
        server_ctx = client_ctx = None
        if tls:
            cert, key = _self_signed(Path(tmp))
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(cert, key)
            client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client_ctx.load_verify_locations(cert)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        received = [0]
        failure: list[BaseException] = []

        def receive() -> None:
            try:
                conn, _ = listener.accept()
                if server_ctx is not None:
                    conn = server_ctx.wrap_socket(conn, server_side=True)
                buffer = memoryview(bytearray(CHUNK))
                with conn:
                    while received[0] < nbytes:
                        got = conn.recv_into(buffer)
                        if not got:
                            break
                        received[0] += got
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        payload = memoryview(np.ones(CHUNK, dtype=np.uint8).tobytes())
        with socket.create_connection(("127.0.0.1", port)) as raw:
            sock = (
                client_ctx.wrap_socket(raw, server_hostname="localhost")
                if client_ctx is not None
                else raw
            )
            started = time.perf_counter()
            sent = 0
            while sent < nbytes:
                sock.sendall(payload[: min(CHUNK, nbytes - sent)])
                sent += min(CHUNK, nbytes - sent)
            thread.join(120)
            elapsed = time.perf_counter() - started
            if sock is not raw:
                sock.close()
        listener.close()
        if failure:
            raise RuntimeError(f"loopback stream failed: {failure[0]}")
        if received[0] != nbytes:
            raise RuntimeError(f"loopback stream: {received[0]} of {nbytes} bytes arrived")
        return nbytes / elapsed / MB
