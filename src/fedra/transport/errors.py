"""Errors of the transport layer."""

from __future__ import annotations

from fedra.core import FedraError


class ChannelClosed(FedraError):
    """A channel can carry no more messages: the peer closed it, it broke, or it was closed here."""
