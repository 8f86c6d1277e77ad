"""What one host's link to the switch does to its packets, and the named link profiles.

A bed is a star: every host has one access link to a user-space switch, and each direction of
that link (``egress``: host to switch, ``ingress``: switch to host) is its own :class:`Link`.
A packet from A to B crosses A's egress, then B's ingress, so with the same link on both
hosts the round trip is ``4 x delay_ms`` and the loss of a path about ``2 x loss`` per
direction. :data:`PROFILES` are chosen so that two hosts on the same profile see the
profile's round trip and loss between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

#: Which directions of a host's link a change applies to.
Direction = Literal["both", "egress", "ingress"]
#: A queue never holds less than this (bytes): a few full-size packets.
MIN_QUEUE_BYTES = 1 << 20

Rate = Annotated[float, msgspec.Meta(gt=0, description="megabits per second")]
Milliseconds = Annotated[float, msgspec.Meta(ge=0, le=60_000, description="milliseconds")]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1, description="a fraction 0-1")]


class Link(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One direction of a host's access link.

    ``rate_mbit``: serialisation rate (None: unlimited); ``delay_ms``: one-way propagation
    delay; ``jitter_ms``: each packet's delay varies uniformly in ``delay ± jitter`` but packets
    never overtake each other (as netem with a rate: TCP sees delay variation, not
    reordering); ``loss``: probability that a packet is dropped; ``queue_bytes``: the drop-tail
    limit of the serialisation queue (None: the bandwidth-delay product of a path of two such
    links, at least 1 MiB); ``up``: False drops everything, also packets already on the link.
    """

    rate_mbit: Rate | None = 1000.0
    delay_ms: Milliseconds = 0.0
    jitter_ms: Milliseconds = 0.0
    loss: Fraction = 0.0
    queue_bytes: Annotated[int, msgspec.Meta(ge=1500)] | None = None
    up: bool = True

    @property
    def queue_limit(self) -> int:
        """The drop-tail limit in bytes (``queue_bytes`` or its default)."""
        if self.queue_bytes is not None:
            return self.queue_bytes
        if self.rate_mbit is None:
            return MIN_QUEUE_BYTES
        bdp = self.rate_mbit * 1e6 / 8 * (4 * self.delay_ms + 2 * self.jitter_ms) / 1e3
        return max(MIN_QUEUE_BYTES, int(bdp))

    def changed(self, **changes: object) -> Link:
        """A copy with ``changes`` applied and validated."""
        merged = msgspec.structs.asdict(self) | changes
        return msgspec.convert(merged, Link)


@dataclass(frozen=True)
class Profile:
    """A named path between two hosts: its rate, round trip and loss per direction."""

    name: str
    rate_mbit: float
    rtt_ms: float
    loss: float = 0.0

    @property
    def link(self) -> Link:
        """The access link that gives two hosts on this profile the profile's path."""
        per_link_loss = 1 - (1 - self.loss) ** 0.5
        return Link(rate_mbit=self.rate_mbit, delay_ms=self.rtt_ms / 4, loss=per_link_loss)

    @property
    def bdp_bytes(self) -> int:
        """The path's bandwidth-delay product."""
        return int(self.rate_mbit * 1e6 / 8 * self.rtt_ms / 1e3)


#: The profiles of issue 16: LAN, WAN and far WAN.
PROFILES: dict[str, Profile] = {
    "lan": Profile("lan", rate_mbit=1000, rtt_ms=0.2),
    "wan": Profile("wan", rate_mbit=1000, rtt_ms=50),
    "far": Profile("far", rate_mbit=200, rtt_ms=150, loss=0.001),
}
