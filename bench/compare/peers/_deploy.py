"""Helpers for the deployment drivers (standard library only): ports, processes, waiting,
and hosts (network namespaces of a bed, for the WAN rows of ``bench.wan_peers``).

The harness samples the memory of the process tree whose root a driver announces with
:func:`announce_pid`, and starts a new memory window at each :func:`phase`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def in_netns(namespace: str | None, command: Sequence[str]) -> list[str]:
    """``command`` run inside the network namespace ``namespace`` (a host of a bed of
    ``bench.netbed``: ``ip netns exec``, which also puts the host's /etc/hosts in place);
    ``command`` itself when ``namespace`` is None."""
    if not namespace:
        return list(command)
    return ["ip", "netns", "exec", namespace, *command]


def parse_netns(pairs: Sequence[str]) -> dict[str, str]:
    """``["server=fb1a-server1", "site-1=fb1a-site-1"]`` -> ``{role: namespace}``."""
    hosts: dict[str, str] = {}
    for pair in pairs:
        role, sep, namespace = pair.partition("=")
        if not sep or not role or not namespace:
            raise SystemExit(f"--netns wants ROLE=NAMESPACE, got {pair!r}")
        hosts[role] = namespace
    return hosts


def announce_pid(role: str, pid: int) -> None:
    """Tell the harness the root of a process tree to sample (``BENCH-PID``)."""
    sys.stdout.write(f"BENCH-PID {role} {pid}\n")
    sys.stdout.flush()


def phase(label: str) -> None:
    """Tell the harness a new memory window begins (``BENCH-PHASE``)."""
    sys.stdout.write(f"BENCH-PHASE {label}\n")
    sys.stdout.flush()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    """Poll ``condition`` until it holds; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


class Processes:
    """Processes this driver started, each in a session of its own; ended by group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, command: Sequence[str], log: Path, env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` with its output in ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop_all(self, grace: float = 10.0) -> None:
        """TERM every process group, then KILL what is left after ``grace`` seconds."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
