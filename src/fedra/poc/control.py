"""``fedra poc start`` / ``fedra poc stop``: run each participant's own start/stop scripts.

A participant runs while its kit's lock is held (see :mod:`fedra.host.daemon`): that, not a
pid file, is what both commands check.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from fedra.core import FedraError
from fedra.host.daemon import is_running
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


def _run(script: Path, quiet: bool) -> None:
    """Run start.sh (its output not captured: what it starts keeps it open)."""
    out = subprocess.DEVNULL if quiet else None
    code = subprocess.run([str(script)], check=False, stdout=out, stderr=out).returncode
    if code != 0:
        raise FedraError(f"{script} failed (exit code {code})")


def _stop(script: Path, quiet: bool) -> None:
    """Run stop_fl.sh; its error line becomes a FedraError."""
    done = subprocess.run([str(script)], check=False, capture_output=True, text=True)
    if not quiet and done.stdout:
        print(done.stdout, end="")
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"{script} failed"]
        raise FedraError(lines[-1].removeprefix("error: "))


def _connected(layout: PocLayout, site: str) -> bool:
    log = layout.site(site) / "log.txt"
    return log.is_file() and "connected to the server" in log.read_text(errors="replace")


def start(
    layout: PocLayout, *, timeout: float = 60.0, quiet: bool = False, wait_for_sites: bool = True
) -> None:
    """Start the server, wait for its ports, start the sites, wait until they connect."""
    import json

    ports = json.loads((layout.root / ".fedra-poc").read_text())
    if is_running(layout.server):
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
        if not is_running(layout.site(site)):
            _run(layout.site(site) / "startup" / "start.sh", quiet)
    if wait_for_sites:
        for site in layout.sites:
            _wait(lambda s=site: _connected(layout, s), timeout, f"{site} to connect")  # type: ignore[misc]


def stop(layout: PocLayout, *, timeout: float = 60.0, quiet: bool = False) -> list[str]:
    """Stop the sites, then the server; wait until their processes are gone."""
    stopped = []
    folders = [layout.site(s) for s in layout.sites] + [layout.server]
    for folder in folders:
        running = is_running(folder)
        # stop_fl.sh also removes a stale daemon_pid.fl; it signals only this participant.
        _stop(folder / "startup" / "stop_fl.sh", quiet)
        if running:
            stopped.append(folder.name)
    for folder in folders:
        _wait(lambda f=folder: not is_running(f), timeout, f"{folder.name} to stop")  # type: ignore[misc]
    return stopped
