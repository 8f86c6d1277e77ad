"""The user-space packet switch of a bed: ``python -m bench.netbed.switch --control SOCK``.

It owns one TUN device per host (created here, in the root namespace, then moved into the
host's namespace by the bed), reads IPv4 packets from them, routes each by its destination
address and charges it to two queues: the sender's egress and the receiver's ingress
(:class:`~bench.netbed.link.Link`: rate, delay, jitter without reordering, loss, drop-tail
limit, up/down). Timed events sit in a heap; one epoll loop waits on the TUN fds, the control
socket and a timerfd armed (to the microsecond) for the next event, so it never spins.

It runs as a process of its own (its own GIL) and stops on :class:`~bench.netbed.control.
Shutdown`, on SIGTERM, or when ``--owner-pid`` exits; then it closes its TUN devices and,
when the owner died without cleaning up, removes the bed's namespaces too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import heapq
import itertools
import os
import random
import select
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bench.netbed.control import (
    AddHost,
    Block,
    GetStats,
    HostStats,
    QueueStats,
    Reply,
    Request,
    SetLink,
    Shutdown,
)
from bench.netbed.link import Link
from bench.netbed.system import open_tun, remove_namespace

READ_SIZE = 1 << 17
#: Packets read from one TUN per loop turn, so that one busy host cannot starve the others.
READ_BURST = 64


class Queue:
    """One direction of a host's link: decides when a packet comes out, or drops it."""

    def __init__(self, link: Link, rng: random.Random) -> None:
        self.rng = rng
        self.last_departure = 0.0
        self.last_arrival = 0.0
        self.packets = self.bytes = 0
        self.dropped_loss = self.dropped_queue = self.dropped_down = self.dropped_blocked = 0
        self.set(link)

    def set(self, link: Link) -> None:
        """Apply ``link`` from now on (packets already queued keep their times)."""
        self.link = link
        self.bytes_per_s = None if link.rate_mbit is None else link.rate_mbit * 1e6 / 8
        self.delay = link.delay_ms / 1e3
        self.jitter = link.jitter_ms / 1e3
        self.limit = link.queue_limit

    def admit(self, now: float, size: int) -> float | None:
        """When a packet of ``size`` bytes entering at ``now`` leaves the link; None: dropped."""
        link = self.link
        if not link.up:
            self.dropped_down += 1
            return None
        if link.loss and self.rng.random() < link.loss:
            self.dropped_loss += 1
            return None
        leave = now
        if self.bytes_per_s is not None:
            start = max(now, self.last_departure)
            if (start - now) * self.bytes_per_s + size > self.limit:
                self.dropped_queue += 1
                return None
            self.last_departure = leave = start + size / self.bytes_per_s
        leave += self.delay
        if self.jitter:
            leave += self.rng.uniform(-self.jitter, self.jitter)
        # No overtaking: a packet never arrives before the one sent ahead of it.
        leave = max(leave, self.last_arrival, now)
        self.last_arrival = leave
        self.packets += 1
        self.bytes += size
        return leave

    def stats(self) -> QueueStats:
        """The counters so far."""
        return QueueStats(
            self.link,
            self.packets,
            self.bytes,
            self.dropped_loss,
            self.dropped_queue,
            self.dropped_down,
            self.dropped_blocked,
        )


@dataclass
class Host:
    """A host of the bed: its TUN fd and the two directions of its link."""

    name: str
    fd: int
    netns: str
    egress: Queue
    ingress: Queue


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class Timer:
    """A CLOCK_MONOTONIC timerfd (``time.monotonic`` is that clock on Linux), armed to the
    microsecond; epoll's own timeout has millisecond steps, too coarse for a LAN link."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        clock_monotonic, flags = 1, os.O_NONBLOCK | os.O_CLOEXEC
        self.fd = int(self._libc.timerfd_create(clock_monotonic, flags))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self.armed: float | None = None

    def arm(self, when: float | None) -> None:
        """Fire at monotonic time ``when`` (None: disarm)."""
        if when == self.armed:
            return
        self.armed = when
        spec = _Itimerspec()
        if when is not None:
            when = max(when, 1e-6)
            spec.it_value.tv_sec = int(when)
            spec.it_value.tv_nsec = max(1, int((when - int(when)) * 1e9))
        abstime = 1
        if self._libc.timerfd_settime(self.fd, abstime, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def clear(self) -> None:
        """Consume an expiry."""
        self.armed = None
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)


@dataclass
class _Conn:
    sock: socket.socket
    buffer: bytes = b""


@dataclass
class Switch:
    """The switch's state and its event loop."""

    listener: socket.socket
    owner_fd: int | None = None
    wakeup_fd: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    hosts: dict[int, Host] = field(default_factory=dict)  # by TUN fd
    names: dict[str, Host] = field(default_factory=dict)
    routes: dict[bytes, Host] = field(default_factory=dict)  # by 4-byte IPv4 address
    conns: dict[int, _Conn] = field(default_factory=dict)
    #: (source, destination) host pairs whose packets are dropped at the switch.
    blocked: set[tuple[str, str]] = field(default_factory=set)
    running: bool = True
    owner_died: bool = False

    def __post_init__(self) -> None:
        self.epoll = select.epoll()
        self.timer = Timer()
        self.heap: list[tuple[float, int, int, bytes, Host, Host]] = []
        self.seq = itertools.count()
        self.decoder = msgspec.json.Decoder(Request)
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        self.epoll.register(self.timer.fd, select.EPOLLIN)
        for fd in (self.owner_fd, self.wakeup_fd):
            if fd is not None:
                self.epoll.register(fd, select.EPOLLIN)

    # -- packets ----------------------------------------------------------------------------

    def _from_host(self, src: Host, now: float) -> None:
        for _ in range(READ_BURST):
            try:
                packet = os.read(src.fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            if len(packet) < 20 or packet[0] >> 4 != 4:
                continue  # not IPv4 (e.g. IPv6 router solicitations): not routed
            dst = self.routes.get(packet[16:20])
            if dst is None:
                continue
            if self.blocked and (src.name, dst.name) in self.blocked:
                src.egress.dropped_blocked += 1
                continue
            when = src.egress.admit(now, len(packet))
            if when is not None:
                heapq.heappush(self.heap, (when, next(self.seq), 1, packet, src, dst))

    def _due(self) -> None:
        """Move every packet whose time has come one stage on."""
        now = time.monotonic()
        heap = self.heap
        while heap and heap[0][0] <= now:
            when, _, stage, packet, src, dst = heapq.heappop(heap)
            if stage == 1:  # at the switch: onto the receiver's ingress
                if not src.egress.link.up:
                    src.egress.dropped_down += 1
                    continue
                if self.blocked and (src.name, dst.name) in self.blocked:
                    src.egress.dropped_blocked += 1
                    continue
                out = dst.ingress.admit(when, len(packet))
                if out is not None:
                    heapq.heappush(heap, (out, next(self.seq), 2, packet, src, dst))
            elif not dst.ingress.link.up:
                dst.ingress.dropped_down += 1
            elif self.blocked and (src.name, dst.name) in self.blocked:
                src.egress.dropped_blocked += 1
            else:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(dst.fd, packet)

    # -- control ----------------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if isinstance(request, AddHost):
            return self._add_host(request)
        if isinstance(request, SetLink):
            host = self.names.get(request.host)
            if host is None:
                return Reply(False, f"no host {request.host!r}")
            if request.direction in ("both", "egress"):
                host.egress.set(request.link)
            if request.direction in ("both", "ingress"):
                host.ingress.set(request.link)
            return Reply(True)
        if isinstance(request, Block):
            return self._block(request)
        if isinstance(request, GetStats):
            stats = {
                n: HostStats(h.egress.stats(), h.ingress.stats()) for n, h in self.names.items()
            }
            return Reply(True, stats=stats)
        if isinstance(request, Shutdown):
            self.running = False
        return Reply(True)

    def _block(self, request: Block) -> Reply:
        unknown = [h for h in (request.src, request.dst) if h not in self.names]
        if unknown:
            return Reply(False, f"no host {unknown[0]!r}")
        pair = (request.src, request.dst)
        if request.blocked:
            self.blocked.add(pair)
        else:
            self.blocked.discard(pair)
        # Packets of the pair already on their way are dropped when they come due.
        return Reply(True, blocked=sorted(self.blocked))

    def _add_host(self, request: AddHost) -> Reply:
        if request.host in self.names:
            return Reply(False, f"host {request.host!r} exists")
        try:
            address = socket.inet_aton(request.address)
            fd = open_tun(request.tun)
        except (OSError, ValueError) as err:
            return Reply(False, f"cannot add {request.host}: {err}")
        host = Host(
            request.host,
            fd,
            request.netns,
            Queue(request.link, self.rng),
            Queue(request.link, self.rng),
        )
        self.hosts[fd] = self.names[request.host] = self.routes[address] = host
        self.epoll.register(fd, select.EPOLLIN)
        return Reply(True)

    def _accept(self) -> None:
        sock, _ = self.listener.accept()
        sock.setblocking(False)
        self.conns[sock.fileno()] = _Conn(sock)
        self.epoll.register(sock.fileno(), select.EPOLLIN)

    def _from_conn(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.epoll.unregister(conn.sock.fileno())
            del self.conns[conn.sock.fileno()]
            conn.sock.close()
            return
        conn.buffer += data
        while b"\n" in conn.buffer:
            line, conn.buffer = conn.buffer.split(b"\n", 1)
            try:
                reply = self._handle(self.decoder.decode(line))
            except msgspec.ValidationError as err:
                reply = Reply(False, f"bad request: {err}")
            conn.sock.setblocking(True)
            conn.sock.sendall(msgspec.json.encode(reply) + b"\n")
            conn.sock.setblocking(False)

    # -- loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until shut down, then close every TUN device."""
        while self.running:
            try:
                events = self.epoll.poll(-1)
            except InterruptedError:
                continue
            now = time.monotonic()
            for fd, _ in events:
                if fd in self.hosts:
                    self._from_host(self.hosts[fd], now)
                elif fd == self.timer.fd:
                    self.timer.clear()
                elif fd == self.listener.fileno():
                    self._accept()
                elif fd in self.conns:
                    self._from_conn(self.conns[fd])
                elif fd == self.owner_fd:
                    self.running, self.owner_died = False, True
                elif fd == self.wakeup_fd:  # a signal: SIGTERM stops (see main)
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, 64)
            self._due()
            self.timer.arm(self.heap[0][0] if self.heap else None)
        self.close()

    def close(self) -> None:
        """Close the TUN devices; remove the namespaces too when the owner died."""
        for host in self.hosts.values():
            os.close(host.fd)
        if self.owner_died:
            for host in self.hosts.values():
                remove_namespace(host.netns)


def main(argv: list[str] | None = None) -> int:
    """Start a switch on the control socket; print ``ready`` once it accepts requests."""
    parser = argparse.ArgumentParser(prog="python -m bench.netbed.switch", description=__doc__)
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--owner-pid", type=int, help="stop (and clean up) when this exits")
    parser.add_argument("--seed", type=int, help="seed of the loss and jitter draws")
    args = parser.parse_args(argv)
    # The network is not the hosts' CPU: ahead of the participants when the machine is busy.
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.control)
    listener.listen(8)
    owner_fd = None if args.owner_pid is None else os.pidfd_open(args.owner_pid)
    wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    switch = Switch(listener, owner_fd, wakeup_read, random.Random(args.seed))

    def stop(signum: int, frame: object) -> None:
        switch.running = False

    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to the test is the bed's to handle
    print("ready", flush=True)
    switch.run()
    listener.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.control)
    state = Path(args.control).parent
    if switch.owner_died and state.name.startswith("fb"):  # the bed's state folder
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
