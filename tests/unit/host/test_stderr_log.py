"""A parent's standard error as log lines: refused TLS handshakes, rate limits, the pipe."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.host import stderr_log
from fedra.host.stderr_log import StderrLines, Throttle

SSL_FAILED = (
    "I1207 22:50:09.089378    7383 ssl_transport_security.cc:2563] Handshake failed with error "
    "SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: "
    "unable to get local issuer certificate"
)
NEXT_FAILED = (
    "I1207 22:50:09.089463    7383 handshaker.cc:155] CallNextHandshakerLocked: error=UNKNOWN: "
    "Ssl handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
)
CONTINUATION = [
    "=== Source Location Trace: ===",
    "src/core/util/status_helper.cc:68",
    " shutdown=false index=2, args={endpoint=0x7f, args={grpc.http2.bdp_probe=0, "
    "peer_address=ipv4:127.0.0.1:59374, grpc.so_reuseport=0}}",
]
TRACE_NOISE = [
    "I1207 22:50:09.051633    7385 handshaker.cc:80] handshake_manager 0x7f: adding handshaker",
    "I1207 22:50:09.089522    7383 channel_trace.h:396] handshake manager 0x7f: Failed with error",
    "I1207 22:50:09.089522    7383 trace.cc:91] gRPC Tracers: handshaker",
]


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    handler = Keep()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield got
    root.removeHandler(handler)
    root.setLevel(old_level)


def _messages(records: list[logging.LogRecord], name: str) -> list[str]:
    return [r.getMessage() for r in records if r.name == name]


def test_a_traced_refusal_is_one_line_naming_the_peer(records: list[logging.LogRecord]) -> None:
    lines = StderrLines(tracing=True)
    for line in [*TRACE_NOISE, SSL_FAILED, NEXT_FAILED, *CONTINUATION]:
        lines.feed(line, 0.0)
    lines.tick(100.0)
    assert _messages(records, "fedra.tls") == [
        "refused a TLS connection from 127.0.0.1:59374: CERTIFICATE_VERIFY_FAILED "
        "(unable to get local issuer certificate)"
    ]
    assert all(r.levelno == logging.WARNING for r in records)
    assert len(records) == 1  # trace lines and continuations are not logged


def test_untraced_refusals_are_logged_without_a_peer(records: list[logging.LogRecord]) -> None:
    lines = StderrLines(tracing=False)
    lines.feed(SSL_FAILED, 0.0)
    assert _messages(records, "fedra.tls") == [
        "refused a TLS connection from an unknown address: CERTIFICATE_VERIFY_FAILED "
        "(unable to get local issuer certificate)"
    ]


def test_a_traced_refusal_without_its_trace_is_logged_once_it_waited(
    records: list[logging.LogRecord],
) -> None:
    lines = StderrLines(tracing=True)
    lines.feed(SSL_FAILED, 0.0)
    lines.tick(0.5)
    assert not records
    lines.tick(stderr_log.PEER_WAIT + 0.1)
    assert [m.split(":")[0] for m in _messages(records, "fedra.tls")] == [
        "refused a TLS connection from an unknown address"
    ]


def test_a_port_probe_is_not_a_refusal(records: list[logging.LogRecord]) -> None:
    lines = StderrLines(tracing=True)
    lines.feed(
        "I1207 23:06:15.035 99 handshaker.cc:155] CallNextHandshakerLocked: error=UNAVAILABLE: "
        "Handshake read failed (Socket closed)",
        0.0,
    )
    lines.feed(CONTINUATION[2], 0.0)
    lines.tick(100.0)
    assert not records


def test_repeated_refusals_are_rate_limited_and_counted(
    records: list[logging.LogRecord],
) -> None:
    lines = StderrLines(tracing=False)
    for second in range(50):
        lines.feed(SSL_FAILED, float(second))
    assert len(_messages(records, "fedra.tls")) == stderr_log.HANDSHAKES_PER_WINDOW
    lines.tick(stderr_log.WINDOW + 1)
    summary = _messages(records, "fedra.tls")[-1]
    assert summary.startswith(f"refused {50 - stderr_log.HANDSHAKES_PER_WINDOW} more TLS")


def test_other_lines_keep_their_level_or_warn(records: list[logging.LogRecord]) -> None:
    lines = StderrLines(tracing=True)
    lines.feed("E1207 22:50:09.089378    7383 chttp2_server.cc:1] something broke", 0.0)
    lines.feed("Traceback (most recent call last):", 0.0)
    lines.feed("", 0.0)
    assert [(r.name, r.levelno) for r in records] == [
        ("grpc", logging.ERROR),
        ("fedra.stderr", logging.WARNING),
    ]
    assert records[0].getMessage() == "chttp2_server.cc: something broke"


def test_throttle_shares_one_key_once_full() -> None:
    throttle = Throttle(per_window=1, window=10.0, max_keys=2)
    assert throttle.key("a", 0.0) == "a" and throttle.admit("a", 0.0)
    assert throttle.key("b", 0.0) == "b" and throttle.admit("b", 0.0)
    assert throttle.key("c", 1.0) == "(other)"
    assert throttle.key("c", 11.0) == "c"  # the others' windows ended


def test_capture_stderr_sends_descriptor_2_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    code = f"""
import logging, os, sys
logging.basicConfig(filename={str(log)!r}, level=logging.INFO, format="%(name)s: %(message)s")
from fedra.host.stderr_log import capture_stderr
capture_stderr()
os.write(2, b"written by C code\\n")
print("a Python line", file=sys.stderr)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = log.read_text()
    assert "fedra.stderr: written by C code" in text
    assert "fedra.stderr: a Python line" in text
