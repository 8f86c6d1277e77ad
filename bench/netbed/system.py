"""The operating-system side of a bed: namespaces, hosts files, TUN devices, and cleanup.

Everything a bed makes carries its prefix (``fb<pid><letter>-``), so cleanup removes exactly
what one bed made: its namespaces (after ending the processes still inside them, by PID),
their ``/etc/netns/NAME`` folders and any TUN device of the bed still in the root namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16


def unavailable() -> str | None:
    """Why this machine cannot make a bed (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (euid is not 0)"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    if not os.path.exists(TUN_PATH):
        return f"{TUN_PATH} does not exist (no TUN support)"
    try:
        os.close(os.open(TUN_PATH, os.O_RDWR))
    except OSError as err:
        return f"cannot open {TUN_PATH}: {err.strerror}"
    return None


def ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip [-n netns] args``; its output (RuntimeError with stderr when it fails)."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def open_tun(name: str) -> int:
    """Create the TUN device ``name`` (IP packets, no header) in this namespace; its fd.

    The device lives as long as the fd is open."""
    if len(name.encode()) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
    fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def namespaces(prefix: str) -> list[str]:
    """The namespaces whose name starts with ``prefix``."""
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def remove_namespace(netns: str) -> None:
    """End the processes inside ``netns`` (by PID), delete it and its /etc/netns folder."""
    with contextlib.suppress(RuntimeError):
        pids = [int(p) for p in ip("netns", "pids", netns).split()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if sig == signal.SIGTERM:
                pids = wait_gone(pids, 5.0)
    with contextlib.suppress(RuntimeError):
        ip("netns", "del", netns)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The ``pids`` still alive after waiting up to ``timeout`` s for them to exit."""
    deadline = time.monotonic() + timeout
    left = pids
    while left and time.monotonic() < deadline:
        left = [p for p in left if alive(p)]
        if left:
            time.sleep(0.05)
    return left


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sweep(prefix: str) -> list[str]:
    """Remove every namespace, /etc/netns folder and root-namespace TUN with ``prefix``;
    what was removed."""
    if not prefix.startswith("fb") or len(prefix) < 4:
        raise ValueError(f"refusing to sweep the broad prefix {prefix!r}")
    removed = []
    for netns in namespaces(prefix):
        remove_namespace(netns)
        removed.append(netns)
    if NETNS_ETC.is_dir():
        for folder in NETNS_ETC.iterdir():
            if folder.name.startswith(prefix):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(str(folder))
    tun_prefix = prefix.rstrip("-")
    for dev in Path("/sys/class/net").iterdir():
        if dev.name.startswith(tun_prefix):
            with contextlib.suppress(RuntimeError):
                ip("link", "del", dev.name)
                removed.append(dev.name)
    return removed
