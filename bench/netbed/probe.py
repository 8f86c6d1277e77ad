"""Measuring tools that run inside a bed's hosts (plain Python sockets, nothing external).

``python -m bench.netbed.probe serve --port P`` answers, on TCP port P: a connection that
starts with ``sink\\n`` is read to its end and answered with ``{"bytes", "seconds"}``;
``echo\\n`` echoes lines; ``count\\n`` answers how many UDP datagrams arrived on port P
since the last count. UDP datagrams starting with ``p`` are echoed (pings); the others are
counted. The client commands print one JSON line:

- ``rtt HOST --port P --count N``: N UDP pings, one at a time; RTTs in ms.
- ``tcp HOST --port P --seconds S``: one TCP stream for S seconds; the sink's byte count
  and the time from its first byte to the end.
- ``udp HOST --port P --count N``: N numbered datagrams (paced), then asks over TCP how many
  arrived. The switch never reorders, so every datagram that was not dropped has arrived
  before the TCP question.
- ``chat HOST --port P``: stdin lines to an echo connection, replies to stdout.
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import time
from dataclasses import dataclass

import msgspec

CHUNK = 1 << 20
SO_RCVBUFFORCE = 33  # Linux; root may exceed rmem_max


def serve(port: int) -> None:
    """Serve sink, echo and count connections, and UDP pings and counts, forever."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    udp.bind(("0.0.0.0", port))
    listener = socket.create_server(("0.0.0.0", port))
    udp.setblocking(False)
    counted = 0
    conns: dict[socket.socket, _Conn] = {}
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([udp, listener, *conns], [], [])
        for sock in readable:
            if sock is udp:
                counted += _drain_udp(udp)
            elif sock is listener:
                conn, _ = listener.accept()
                conns[conn] = _Conn()
            else:
                state = conns[sock]
                if state.mode == "count":
                    continue
                if not _serve_conn(sock, state):
                    del conns[sock]
                    sock.close()
                elif state.mode == "count":
                    counted += _drain_udp(udp)
                    sock.sendall(msgspec.json.encode(_Count(counted)) + b"\n")
                    counted = 0
                    del conns[sock]
                    sock.close()


def _drain_udp(udp: socket.socket) -> int:
    count = 0
    while True:
        try:
            data, peer = udp.recvfrom(65536)
        except BlockingIOError:
            return count
        if data.startswith(b"p"):
            udp.sendto(data, peer)
        else:
            count += 1


@dataclass
class _Conn:
    """A connection of the server: its mode (the first line) and what it received."""

    mode: str | None = None
    buffer: bytes = b""
    received: int = 0
    first: float | None = None


def _serve_conn(sock: socket.socket, state: _Conn) -> bool:
    """Handle readable data on one connection; False when it is done."""
    data = sock.recv(CHUNK)
    if state.mode is None:
        buffer = state.buffer + data
        if b"\n" not in buffer:
            state.buffer = buffer
            return bool(data)
        head, data = buffer.split(b"\n", 1)
        state.mode = head.decode()
        if state.mode == "count" or not data:
            return True
    if state.mode == "echo":
        if data:
            sock.sendall(data)
        return bool(data)
    if data:
        if state.first is None:
            state.first = time.monotonic()
        state.received += len(data)
        return True
    seconds = 0.0 if state.first is None else time.monotonic() - state.first
    sock.sendall(msgspec.json.encode(Sunk(state.received, seconds)) + b"\n")
    return False


class Rtt(msgspec.Struct, frozen=True):
    """Round trips of UDP pings in ms (None: no answer within the timeout)."""

    rtt_ms: list[float | None]
    median_ms: float | None


class Sunk(msgspec.Struct, frozen=True):
    """What a sink received: bytes, and seconds from its first byte to the end."""

    bytes: int
    seconds: float


class Tcp(msgspec.Struct, frozen=True):
    """One TCP stream: what the sink received, its rate, and the sender's seconds."""

    bytes: int
    seconds: float
    mbit_s: float
    sent_s: float


class Udp(msgspec.Struct, frozen=True):
    """Datagrams sent, and how many arrived."""

    sent: int
    received: int


class _Count(msgspec.Struct, frozen=True):
    received: int


def rtt(host: str, port: int, count: int, timeout: float) -> Rtt:
    """``count`` UDP pings to ``host``; each RTT in ms (None when lost)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.settimeout(timeout)
        times: list[float | None] = []
        for n in range(count):
            start = time.monotonic()
            sock.send(b"p%d" % n)
            try:
                while sock.recv(64) != b"p%d" % n:
                    pass
                times.append((time.monotonic() - start) * 1e3)
            except TimeoutError:
                times.append(None)
    got = [t for t in times if t is not None]
    return Rtt(times, statistics.median(got) if got else None)


def tcp(host: str, port: int, seconds: float) -> Tcp:
    """One TCP stream for ``seconds``; what the sink received and its rate."""
    block = b"\0" * CHUNK
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"sink\n")
        while time.monotonic() - start < seconds:
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)
        sunk = msgspec.json.decode(sock.makefile("rb").readline(), type=Sunk)
    rate = sunk.bytes * 8 / sunk.seconds / 1e6 if sunk.seconds else 0.0
    return Tcp(sunk.bytes, sunk.seconds, rate, time.monotonic() - start)


def udp(host: str, port: int, count: int, per_second: float) -> Udp:
    """``count`` datagrams paced at ``per_second``, then how many arrived."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        start = time.monotonic()
        for n in range(count):
            delay = start + n / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing, not synchronisation
            sock.send(b"d%d" % n)
    with socket.create_connection((host, port), timeout=60) as conn:
        conn.sendall(b"count\n")
        answer = msgspec.json.decode(conn.makefile("rb").readline(), type=_Count)
    return Udp(count, answer.received)


def chat(host: str, port: int) -> None:
    """Relay stdin lines to an echo connection and the echoes to stdout."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.settimeout(None)
        sock.sendall(b"echo\n")
        print("connected", flush=True)
        replies = sock.makefile("rb")
        for line in sys.stdin.buffer:
            sock.sendall(line)
            sys.stdout.buffer.write(replies.readline())
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """The probe's command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.netbed.probe", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve").add_argument("--port", type=int, required=True)
    for name in ("rtt", "tcp", "udp", "chat"):
        cmd = sub.add_parser(name)
        cmd.add_argument("host")
        cmd.add_argument("--port", type=int, required=True)
        cmd.add_argument("--count", type=int, default=20)
        cmd.add_argument("--seconds", type=float, default=2.0)
        cmd.add_argument("--per-second", type=float, default=2000.0)
        cmd.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.port)
    elif args.cmd == "chat":
        chat(args.host, args.port)
    else:
        result: Rtt | Tcp | Udp
        if args.cmd == "rtt":
            result = rtt(args.host, args.port, args.count, args.timeout)
        elif args.cmd == "tcp":
            result = tcp(args.host, args.port, args.seconds)
        else:
            result = udp(args.host, args.port, args.count, args.per_second)
        print(msgspec.json.encode(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
