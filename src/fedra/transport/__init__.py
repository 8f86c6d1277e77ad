"""Moving envelopes between processes: local channels, the gRPC transport, an in-memory one.

The bytes of every message come from :mod:`fedra.wire`; this package only moves them.
:class:`Connection` is the interface of a connection; :class:`TransportServer` and
:func:`connect` implement it over gRPC with mutual TLS, :class:`MemoryServer` and
:func:`memory_connect` in memory, :class:`LocalChannel` over a Unix socket between a parent
and its child process. What each does of the optional hooks (a gate on incoming messages,
shared broadcast frames, draining, liveness) its :class:`Capabilities` say.
"""

import typing as _typing

from fedra.transport._frames import FRAME_SIZE, SharedBody
from fedra.transport._stream import DEFAULT_MAX_MESSAGE
from fedra.transport.connection import (
    Broadcast,
    Capabilities,
    Connection,
    Gate,
    PeerIdentity,
    Slot,
)
from fedra.transport.errors import ChannelClosed, ConnectError, ListenError, MessageRefused
from fedra.transport.local import LocalChannel, accept_channel, connect_unix, listen_unix
from fedra.transport.memory import MemoryConnection, MemoryServer, memory_connect
from fedra.transport.spool import SPOOL_BYTES, Spool, SpoolError

if _typing.TYPE_CHECKING:
    from fedra.transport.grpc_client import connect
    from fedra.transport.grpc_server import TransportServer


def __getattr__(name: str) -> _typing.Any:
    # gRPC loads only in processes that use the network: a job process, which talks to its
    # parent over a local channel, starts about 13 MiB smaller.
    found: object
    if name == "connect":
        from fedra.transport.grpc_client import connect as found
    elif name == "TransportServer":
        from fedra.transport.grpc_server import TransportServer as found
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = found  # once loaded, a plain attribute
    return found


__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "FRAME_SIZE",
    "SPOOL_BYTES",
    "Broadcast",
    "Capabilities",
    "ChannelClosed",
    "ConnectError",
    "Connection",
    "Gate",
    "ListenError",
    "LocalChannel",
    "MemoryConnection",
    "MemoryServer",
    "MessageRefused",
    "PeerIdentity",
    "SharedBody",
    "Slot",
    "Spool",
    "SpoolError",
    "TransportServer",
    "accept_channel",
    "connect",
    "connect_unix",
    "listen_unix",
    "memory_connect",
]
