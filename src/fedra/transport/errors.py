"""Errors of the transport layer."""

from __future__ import annotations

from fedra.core import FedraError


class ChannelClosed(FedraError):
    """A channel can carry no more messages: the peer closed it, it broke, or it was closed here."""


class ConnectError(FedraError):
    """A connection could not be opened: the server is unreachable, TLS failed, or it refused."""


class ListenError(FedraError):
    """A server could not listen on the address it was given (in use, or not a local address)."""


class MessageRefused(FedraError):
    """Raised by a receive gate to refuse a message from its head: its body is then skipped
    (read from the stream and dropped, never held) and the connection goes on."""
