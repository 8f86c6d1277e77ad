"""Helpers of the transport tests: connection pairs over each transport, and a worker thread."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certs_helper import Federation

from fedra.transport import (
    Connection,
    LocalChannel,
    MemoryServer,
    PeerIdentity,
    TransportServer,
    connect,
    memory_connect,
)

SERVER_ID = PeerIdentity("server", "org-0", "server")
SITE_ID = PeerIdentity("site-1", "org-1", "client")


class LocalPair:
    """What stands for the server of a local channel: the parent's end, closed by ``stop``."""

    def __init__(self, parent_end: LocalChannel) -> None:
        self.parent_end = parent_end

    def stop(self, grace: float = 1.0) -> None:
        del grace
        self.parent_end.close()


@dataclass
class Link:
    """Both ends of one connection, and the server behind it."""

    client: Connection
    server_end: Connection
    server: TransportServer | MemoryServer | LocalPair


def open_link(kind: str, federation: Federation, **server_args: int) -> Link:
    """A started server of ``kind`` ("grpc", "memory" or "local": a socketpair between two
    LocalChannels) with one client connected."""
    accepted: queue.Queue[Connection] = queue.Queue()
    server: TransportServer | MemoryServer | LocalPair
    if kind == "local":
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent_end = LocalChannel(parent_sock, peer=SITE_ID)
        child_end = LocalChannel(child_sock, peer=SERVER_ID)
        return Link(client=child_end, server_end=parent_end, server=LocalPair(parent_end))
    if kind == "grpc":
        server = TransportServer(
            "127.0.0.1",
            0,
            ca_pem=federation.ca.cert,
            cert_pem=federation.server.cert,
            key_pem=federation.server.key,
            on_connect=accepted.put,
            **server_args,
        )
        port = server.start()
        client = connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
        )
    else:
        server = MemoryServer(accepted.put, identity=SERVER_ID)
        client = memory_connect(server, SITE_ID.name, SITE_ID.org, SITE_ID.role)
    # on_connect ran before connect returned, so the server's end is already there.
    return Link(client=client, server_end=accepted.get_nowait(), server=server)


class Worker:
    """Runs ``fn`` in a thread and hands its result or exception back to the test."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as err:
            self.error = err

    def join(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "worker thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result
