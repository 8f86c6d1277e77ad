"""A real federation for end-to-end tests: server and sites as processes, gRPC + mTLS.

Every process a test starts runs in a session of its own and is ended by process group
(SIGTERM, then SIGKILL) when the test ends, also when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedra.poc import PocLayout, prepare


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def read(path: Path) -> str:
    """A text file's content, '' if missing."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in read(status)


@dataclass
class Federation:
    """A prepared POC workspace and the processes started from it."""

    layout: PocLayout
    fed_port: int
    admin_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start the server ('server') or a site's parent process."""
        folder = self.layout.server if name == "server" else self.layout.site(name)
        module = "fedra.runtime.server_parent" if name == "server" else "fedra.runtime.site_parent"
        with open(folder / "stderr.txt", "ab") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "--kit", str(folder)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one participant's process group and reap it."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(30)

    def log(self, name: str) -> str:
        """A participant's log.txt."""
        folder = self.layout.server if name == "server" else self.layout.site(name)
        return read(folder / "log.txt")

    def session(self):  # type: ignore[no-untyped-def]
        """An admin Session with the POC admin kit."""
        from fedra.admin import Session

        return Session.connect(self.layout.admin, timeout=15.0)

    def wait_sites(self, sites: list[str], timeout: float = 60.0) -> None:
        """Until the server lists exactly these sites as connected."""

        def connected() -> bool:
            with self.session() as s:
                return sorted(x.name for x in s.sites_status().sites) == sorted(sites)

        wait_for(connected, timeout, f"sites {sites} to connect")

    def stop_all(self) -> None:
        """End every process this federation started (by process group)."""
        for name in list(self.procs):
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name in list(self.procs):
            proc = self.procs.pop(name)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def make_federation(root: Path, num_sites: int) -> Federation:
    """Prepare a POC workspace on free ports."""
    fed_port, admin_port = free_port(), free_port()
    while admin_port == fed_port:
        admin_port = free_port()
    layout = prepare(root, num_sites, host="localhost", fed_port=fed_port, admin_port=admin_port)
    return Federation(layout, fed_port, admin_port)


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    """A running federation: server and two sites, connected."""
    fed = make_federation(tmp_path / "poc", 2)
    try:
        fed.start("server")
        for site in fed.layout.sites:
            fed.start(site)
        fed.wait_sites(list(fed.layout.sites))
        yield fed
    finally:
        fed.stop_all()
