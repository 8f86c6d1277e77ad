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
    """Raised by a connection's gate to refuse a message from its head.

    By default its body is then skipped (read from the stream and dropped, never held) and the
    connection goes on. ``ends_connection``: the peer may not go on either: the connection ends
    at once and the peer is told the reason (``str`` of the exception).
    """

    def __init__(self, reason: str, *, ends_connection: bool = False) -> None:
        super().__init__(reason)
        self.ends_connection = ends_connection
