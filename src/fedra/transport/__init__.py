"""Moving envelopes between processes: framed channels over local sockets (gRPC later).

The bytes of every message come from :mod:`fedra.wire`; this package only moves them.
"""

from fedra.transport.errors import ChannelClosed
from fedra.transport.local import LocalChannel, accept_channel, connect_unix, listen_unix

__all__ = [
    "ChannelClosed",
    "LocalChannel",
    "accept_channel",
    "connect_unix",
    "listen_unix",
]
