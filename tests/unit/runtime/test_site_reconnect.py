"""The site parent's connect loop: a server that is gone costs no gRPC connect attempt.

A gRPC connect to an address where nothing listens waits out its whole timeout (10 s) before
it gives up; a site parent told to stop meanwhile could not stop until then.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import SimpleNamespace

from fedra.runtime.site_parent import SiteParent
from fedra.runtime.site_resources import SiteResourceBook, SiteResources


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_is_gone_is_not_dialled_and_shutdown_ends_the_loop(tmp_path: Path) -> None:
    sp = SiteParent.__new__(SiteParent)  # no certificate, spool or overseer
    kit = SimpleNamespace(
        name="site-a",
        heartbeat_interval=60.0,
        root=tmp_path,
        target=f"127.0.0.1:{closed_port()}",
        server_name="server1",
    )
    sp._setup(kit, SiteResourceBook("site-a", SiteResources(num_cpus=2)))  # type: ignore[arg-type]
    dialled: list[str] = []
    refused = threading.Event()

    def connect(target: str, server_name: str) -> object:
        dialled.append(target)
        raise AssertionError("dialled a server that does not listen")

    sp._connect = connect  # type: ignore[method-assign]
    real_wait = sp._stopping.wait

    def wait(timeout: float | None = None) -> bool:
        refused.set()  # the loop backs off after a failed attempt
        return real_wait(timeout)

    sp._stopping.wait = wait  # type: ignore[method-assign]
    loop = threading.Thread(target=sp.run, daemon=True)
    loop.start()
    assert refused.wait(30), "the loop never backed off"
    sp.shutdown()
    loop.join(30)
    assert not loop.is_alive()
    assert dialled == []
