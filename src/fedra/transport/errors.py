"""Errors of the transport layer."""

from __future__ import annotations

from fedra.core import FedraError


class ChannelClosed(FedraError):
    """A channel can carry no more messages: the peer closed it, it broke, or it was closed here."""


class ConnectError(FedraError):
    """A connection could not be opened: the server is unreachable, TLS failed, or it refused."""


class ListenError(FedraError):
    """A server could not listen on the address it was given (in use, or not a local address)."""
