"""A 2.55 GB model over the gRPC transport (mutual TLS on loopback): correct, and in bounded memory.

The sender holds its arrays (1x the message) and the receiver one buffer of the message's size
(1x); nothing else may hold the message whole, so the peak memory growth of this process stays
near 2x the message size, well under 3x.
"""

from __future__ import annotations

import importlib.util
import queue
import resource
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel
from fedra.transport import Connection, TransportServer, connect
from fedra.wire import Envelope

pytestmark = pytest.mark.slow

#: Bytes in each of the three arrays (2.55 GB in all).
ARRAY_BYTES = 850_000_000
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _certs_helper() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "unit" / "transport" / "certs_helper.py"
    spec = importlib.util.spec_from_file_location("certs_helper", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("certs_helper", module)
    spec.loader.exec_module(module)
    return module


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False if impossible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _rss_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in {_STATUS}")


def test_a_2_5_gb_model_goes_through_in_bounded_memory() -> None:
    certs: Any = _certs_helper()
    federation = certs.make_federation()
    accepted: queue.Queue[Connection] = queue.Queue()
    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=accepted.put,
    )
    port = server.start()
    client = connect(
        f"localhost:{port}",
        ca_pem=federation.ca.cert,
        cert_pem=federation.site.cert,
        key_pem=federation.site.key,
    )
    server_end = accepted.get_nowait()
    try:
        exact_peak = _reset_peak_rss()
        before_kib = _rss_kib("VmRSS")
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n = ARRAY_BYTES // 4
        params = {
            "ones": np.ones(n, dtype=np.float32),
            "halves": np.full(n, 2.5, dtype=np.float32),
            "count": np.arange(n, dtype=np.int32),
        }
        size = sum(a.nbytes for a in params.values())
        received: list[Envelope] = []
        receiver = threading.Thread(
            target=lambda: received.append(server_end.recv(timeout=120)), daemon=True
        )
        receiver.start()
        start = time.perf_counter()
        client.send(Envelope("result", {"task_id": "big"}, FLModel(params=params)))
        receiver.join(120)
        elapsed = time.perf_counter() - start
        assert received, "the envelope did not arrive"
        if exact_peak:
            growth = (_rss_kib("VmHWM") - before_kib) * 1024
        else:  # the peak since the process started: an upper bound of this test's peak
            growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before) * 1024
        print(
            f"\n{size / 1e9:.2f} GB in {elapsed:.2f} s: {size / elapsed / 1e6:.0f} MB/s; "
            f"peak RSS growth {growth / 1e9:.2f} GB = {growth / size:.2f}x the message"
        )

        got = received[0].model
        assert received[0].headers == {"task_id": "big"}
        assert got is not None and got.params is not None
        ones, halves, count = got.params["ones"], got.params["halves"], got.params["count"]
        assert ones.dtype == np.float32 and count.dtype == np.int32
        assert ones.shape == halves.shape == count.shape == (n,)
        assert ones.sum(dtype=np.float64) == n
        assert halves.sum(dtype=np.float64) == 2.5 * n
        assert count.sum(dtype=np.int64) == n * (n - 1) // 2
        for at in (0, n // 3, n // 2 + 7, n - 1000):
            np.testing.assert_array_equal(count[at : at + 1000], np.arange(at, at + 1000))
            assert (halves[at : at + 1000] == 2.5).all()
        assert growth < 2.5 * size, f"peak memory grew by {growth / size:.2f}x the message"
    finally:
        client.close()
        server.stop(grace=1.0)
