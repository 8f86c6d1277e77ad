"""``fedra poc start`` / ``fedra poc stop``: run each participant's own start/stop scripts."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from fedra.core import FedraError
from fedra.poc.prepare import PocLayout


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise FedraError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid(folder: Path) -> int | None:
    try:
        return int((folder / "daemon_pid.fl").read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(script: Path, quiet: bool) -> None:
    out = subprocess.DEVNULL if quiet else None
    subprocess.run([str(script)], check=True, stdout=out, stderr=out)


def _connected(layout: PocLayout, site: str) -> bool:
    log = layout.site(site) / "log.txt"
    return log.is_file() and "connected to the server" in log.read_text(errors="replace")


def start(
    layout: PocLayout, *, timeout: float = 60.0, quiet: bool = False, wait_for_sites: bool = True
) -> None:
    """Start the server, wait for its ports, start the sites, wait until they connect."""
    import json

    ports = json.loads((layout.root / ".fedra-poc").read_text())
    if _alive(_pid(layout.server)):
        raise FedraError(f"the server of {layout.root} is already running")
    for key in ("fed_port", "admin_port"):
        if _port_open(int(ports[key])):
            error = FedraError(f"port {ports[key]} is already in use on this machine")
            error.hint = (
                "another federation may be running: stop it, or prepare with --port/--admin-port"
            )
            raise error
    _run(layout.server / "startup" / "start.sh", quiet)
    _wait(lambda: _port_open(int(ports["admin_port"])), timeout, "the server's admin port")
    for site in layout.sites:
        if not _alive(_pid(layout.site(site))):
            _run(layout.site(site) / "startup" / "start.sh", quiet)
    if wait_for_sites:
        for site in layout.sites:
            _wait(lambda s=site: _connected(layout, s), timeout, f"{site} to connect")  # type: ignore[misc]


def stop(layout: PocLayout, *, timeout: float = 60.0, quiet: bool = False) -> list[str]:
    """Stop the sites, then the server; wait until their processes are gone."""
    stopped = []
    folders = [layout.site(s) for s in layout.sites] + [layout.server]
    for folder in folders:
        pid = _pid(folder)
        if _alive(pid):
            _run(folder / "startup" / "stop_fl.sh", quiet)
            stopped.append(folder.name)
    for folder in folders:
        for pid in (_pid(folder), _python_pid(folder)):
            _wait(lambda p=pid: not _alive(p), timeout, f"{folder.name} to stop")  # type: ignore[misc]
    return stopped


def _python_pid(folder: Path) -> int | None:
    try:
        return int((folder / "pid.fl").read_text().strip())
    except (OSError, ValueError):
        return None
