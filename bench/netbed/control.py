"""The switch's control channel: JSON lines over a Unix socket, one reply per request.

The bed (:mod:`bench.netbed.bed`) adds hosts and changes links through it; a request returns
once the switch has applied it, so a test that calls ``bed.down("site-1")`` knows the link
is down when the call returns.
"""

from __future__ import annotations

import socket

import msgspec

from bench.netbed.link import Direction, Link


class AddHost(msgspec.Struct, frozen=True, tag="add_host"):
    """Create the TUN device ``tun`` for ``host`` (in the switch's namespace), reached at
    ``address``; ``netns`` is the namespace the bed moves it into (for cleanup)."""

    host: str
    tun: str
    address: str
    netns: str
    link: Link


class SetLink(msgspec.Struct, frozen=True, tag="set_link"):
    """Apply ``link`` to one or both directions of ``host``'s link."""

    host: str
    link: Link
    direction: Direction = "both"


class Block(msgspec.Struct, frozen=True, tag="block"):
    """Drop (``blocked``) or pass again every packet from host ``src`` to host ``dst``: a
    partition between two hosts whose links stay up for everyone else."""

    src: str
    dst: str
    blocked: bool = True


class GetStats(msgspec.Struct, frozen=True, tag="stats"):
    """The counters of every host's link."""


class Shutdown(msgspec.Struct, frozen=True, tag="shutdown"):
    """Stop the switch (its TUN devices go with it)."""


Request = AddHost | SetLink | Block | GetStats | Shutdown


class QueueStats(msgspec.Struct, frozen=True):
    """What one direction of a link did so far."""

    link: Link
    packets: int = 0
    bytes: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_down: int = 0
    #: Egress only: packets dropped because their (source, destination) pair is blocked.
    dropped_blocked: int = 0


class HostStats(msgspec.Struct, frozen=True):
    """Both directions of one host's link."""

    egress: QueueStats
    ingress: QueueStats


class Reply(msgspec.Struct, frozen=True):
    """``ok`` or the ``error``; ``stats`` for :class:`GetStats`; the blocked pairs after a
    :class:`Block`."""

    ok: bool
    error: str = ""
    stats: dict[str, HostStats] = {}
    blocked: list[tuple[str, str]] = []


class ControlError(RuntimeError):
    """The switch refused a request or could not be reached."""


class ControlClient:
    """A connection to a switch's control socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")
        self._decoder = msgspec.json.Decoder(Reply)

    def request(self, request: Request) -> Reply:
        """Send ``request``; the switch's reply (ControlError if it refused)."""
        try:
            self._sock.sendall(msgspec.json.encode(request) + b"\n")
            line = self._file.readline()
        except OSError as err:
            raise ControlError(f"the switch did not answer: {err}") from None
        if not line:
            raise ControlError("the switch closed the control connection")
        reply = self._decoder.decode(line)
        if not reply.ok:
            raise ControlError(reply.error)
        return reply

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()
