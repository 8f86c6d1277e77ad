"""What the FL port's receive window costs the server: ``python -m bench.window_memory``.

A server process (a :class:`~fedra.transport.TransportServer` on localhost with the window
given) takes ``--sites`` mutual-TLS connections. ``idle``: each connection in turn sends one
message of ``--size`` bytes, which the server reads (a granted upload), then all stay
connected and idle; the server's RSS is read before the uploads and once they are all idle
(what gRPC keeps per idle connection after an upload). ``stalled``: every connection sends at
once and the server reads nothing (results waiting at the receive gate); its RSS once the
senders are blocked is what the windows of stalled streams cost. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from fedra.core import FLModel, trim_heap
from fedra.core.memory import share_heaps
from fedra.transport import ChannelClosed, Connection, Spool, TransportServer, connect
from fedra.wire import Envelope
from tests.unit.transport.certs_helper import Federation, make_federation

MIB = 1 << 20


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def serve(window: int, stall: bool, certs: Path) -> None:
    """The server side: answers ``rss`` and ``count`` on stdin, one line each. Set up as a
    server parent is: one malloc heap, big messages spooled, the heap trimmed after each."""
    share_heaps(1)
    pems = json.loads(certs.read_text())
    received = [0]
    lock = threading.Lock()

    def reader(conn: Connection) -> None:
        while True:
            try:
                conn.recv()
            except Exception:  # the connection ended
                return
            trim_heap()
            with lock:
                received[0] += 1

    def on_connect(conn: Connection) -> None:
        if not stall:
            threading.Thread(target=reader, args=(conn,), daemon=True).start()

    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=pems["ca"].encode(),
        cert_pem=pems["cert"].encode(),
        key_pem=pems["key"].encode(),
        on_connect=on_connect,
        max_message=1 << 30,
        max_workers=256,
        receive_window=window,
        spool=Spool(certs.parent / "spool"),
    )
    print(server.start(), flush=True)
    for line in sys.stdin:
        if line.strip() == "rss":
            print(_rss(), flush=True)
        elif line.strip() == "count":
            with lock:
                print(received[0], flush=True)
    server.stop(0.1)


def measure(window: int, sites: int, size: int, mode: str) -> dict[str, object]:
    """One server, ``sites`` connections, one ``mode`` experiment; MiB figures."""
    fed = make_federation()
    with tempfile.TemporaryDirectory(prefix="fedra-window-") as tmp:
        return _measure(fed, Path(tmp) / "certs.json", window, sites, size, mode)


def _measure(
    fed: Federation, certs: Path, window: int, sites: int, size: int, mode: str
) -> dict[str, object]:
    certs.write_text(
        json.dumps(
            {
                "ca": fed.ca.cert.decode(),
                "cert": fed.server.cert.decode(),
                "key": fed.server.key.decode(),
            }
        )
    )
    certs.chmod(0o600)
    argv = [sys.executable, "-m", "bench.window_memory", "--serve", str(certs)]
    argv += ["--window", str(window)] + (["--stall"] if mode == "stalled" else [])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    conns: list[Connection] = []

    def ask(what: str) -> int:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(what + "\n")
        proc.stdin.flush()
        return int(proc.stdout.readline())

    try:
        port = int(proc.stdout.readline())
        for _ in range(sites):
            conns.append(
                connect(
                    f"127.0.0.1:{port}",
                    ca_pem=fed.ca.cert,
                    cert_pem=fed.site.cert,
                    key_pem=fed.site.key,
                    server_name="localhost",
                    max_message=1 << 30,
                )
            )
        before = ask("rss")
        model = FLModel(params={"w": np.ones(size // 4, dtype=np.float32)})
        envelope = Envelope("result", {}, model)
        if mode == "idle":
            for n, conn in enumerate(conns, 1):
                conn.send(envelope)
                while ask("count") < n:  # polling the server's count: a benchmark
                    time.sleep(0.01)
            time.sleep(1.0)
        else:
            for conn in conns:
                threading.Thread(target=_send, args=(conn, envelope), daemon=True).start()
            time.sleep(3.0)  # the senders fill the windows, then block
        after = ask("rss")
    finally:
        for conn in conns:
            conn.close()
        proc.stdin.close()
        proc.wait(30)
    return {
        "mode": mode,
        "window_mib": window / MIB,
        "sites": sites,
        "size_mib": size / MIB,
        "rss_before_mib": round(before / MIB, 1),
        "rss_after_mib": round(after / MIB, 1),
        "per_connection_mib": round((after - before) / MIB / sites, 2),
    }


def _send(conn: Connection, envelope: Envelope) -> None:
    with contextlib.suppress(ChannelClosed):  # closed by the measurement's end
        conn.send(envelope)


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.window_memory", description=__doc__)
    parser.add_argument("--window", type=int, default=16 * MIB)
    parser.add_argument("--sites", type=int, default=32)
    parser.add_argument("--size", type=int, default=20 * MIB, help="bytes per upload")
    parser.add_argument("--mode", choices=["idle", "stalled"], default="idle")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stall", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.window, args.stall, args.serve)
        return 0
    print(json.dumps(measure(args.window, args.sites, args.size, args.mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
