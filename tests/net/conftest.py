"""Fixtures for tests across hosts: beds of network namespaces (:mod:`bench.netbed`).

A bed needs root, the ``ip`` command and /dev/net/tun. Where they are missing the tests are
skipped with the reason, except in CI (``CI=true``), where they fail: a CI image that
cannot make a bed is broken, not excused.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import msgspec
import pytest

from bench.netbed import Link, NetBed, unavailable
from bench.netbed.probe import Rtt, Tcp, Udp

R = TypeVar("R", Rtt, Tcp, Udp)
PROBE = [sys.executable, "-m", "bench.netbed.probe"]
PORT = 5201

MakeBed = Callable[..., NetBed]


def require_beds() -> None:
    """Skip (fail in CI) when this machine cannot make a bed."""
    reason = unavailable()
    if reason is None:
        return
    message = f"no network namespaces here: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a CI image must be able to make beds)")
    pytest.skip(message)


@pytest.fixture
def make_bed() -> Iterator[MakeBed]:
    """``make_bed(hosts, link=…, **kwargs)``: a bed, closed when the test ends."""
    require_beds()
    beds: list[NetBed] = []

    def make(hosts: Sequence[str], link: Link | None = None, **kwargs: Any) -> NetBed:
        bed = NetBed(hosts, link, **kwargs)
        beds.append(bed)
        return bed

    try:
        yield make
    finally:
        for bed in beds:
            bed.close()


def start_server(bed: NetBed, host: str, port: int = PORT) -> subprocess.Popen[bytes]:
    """The probe's server in ``host``, once it listens."""
    proc = bed.popen(host, [*PROBE, "serve", "--port", str(port)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def probe(bed: NetBed, host: str, kind: type[R], *args: str, timeout: float = 60.0) -> R:
    """Run a probe client command in ``host``; its answer as ``kind``."""
    done = bed.run(host, [*PROBE, *args], timeout=timeout)
    return msgspec.json.decode(done.stdout, type=kind)


def readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    """A line of ``proc``'s stdout, or None when none comes within ``timeout`` s."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else None
