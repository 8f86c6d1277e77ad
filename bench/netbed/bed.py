"""A bed of hosts: one network namespace per host, linked through the user-space switch.

``NetBed(["server1", "site-1"], link=PROFILES["wan"].link)`` makes, for each host, a
namespace ``fb<pid><letter>-<host>`` with loopback up, an ``eth0`` (a TUN device of the
switch) with its own address in 10.200.0.0/16, and ``/etc/netns/<namespace>/hosts`` that names
every host of the bed (``server1`` and ``server1.fedra.test``), which ``ip netns exec`` puts
in place of /etc/hosts. Programs run in a host with :meth:`NetBed.popen` / :meth:`NetBed.run`;
links change at run time with :meth:`NetBed.set_link`, :meth:`NetBed.down` and
:meth:`NetBed.up`, each acknowledged by the switch before it returns.

:meth:`NetBed.close` (also on leaving ``with``, at exit, and on SIGTERM, before the process
ends as SIGTERM ends it) ends the processes the bed started, stops the switch and
removes every namespace, TUN device and hosts file of the bed. If the test process dies
without cleaning up, the switch notices (a pidfd of its owner) and removes the namespaces.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from bench.netbed import system
from bench.netbed.control import (
    AddHost,
    Block,
    ControlClient,
    GetStats,
    HostStats,
    SetLink,
    Shutdown,
)
from bench.netbed.link import Direction, Link

#: Where beds keep their control socket, switch log and state (for the CLI).
STATE_ROOT = Path("/run/fedra-netbed")
DEFAULT_SUBNET = "10.200.0.0/16"
DEFAULT_DOMAIN = "fedra.test"
DEFAULT_MTU = 65000
#: Each host's TCP buffers may grow to 32 MiB (kernel defaults cap the send buffer at 4 MiB,
#: 2/3 of a 1 Gbit/s x 50 ms path): hosts tuned for long fat links, so that the bed, not the
#: kernel, limits raw TCP. Pass ``sysctls={}`` for the kernel's defaults.
TUNED_TCP = {
    "net.ipv4.tcp_rmem": "4096 131072 33554432",
    "net.ipv4.tcp_wmem": "4096 16384 33554432",
}
_REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()
_open_beds: list[NetBed] = []
_lock = threading.Lock()


class BedUnavailable(RuntimeError):
    """This machine cannot make a bed (not root, no ``ip``, no /dev/net/tun)."""


class NetBed:
    """Hosts in namespaces linked through a user-space switch; see the module docstring.

    ``link``: every host's link (both directions) unless ``links`` names another for it;
    ``domain``: each host is also ``<host>.<domain>``; ``mtu`` of every link; ``seed`` of
    the switch's loss and jitter draws; ``sysctls`` set in every host (default
    :data:`TUNED_TCP`); ``detached``: the switch outlives this process (the
    CLI's ``up``), and nothing is cleaned up at exit.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        link: Link | None = None,
        *,
        links: Mapping[str, Link] | None = None,
        domain: str = DEFAULT_DOMAIN,
        subnet: str = DEFAULT_SUBNET,
        mtu: int = DEFAULT_MTU,
        seed: int | None = None,
        sysctls: Mapping[str, str] | None = None,
        detached: bool = False,
    ) -> None:
        reason = system.unavailable()
        if reason is not None:
            raise BedUnavailable(reason)
        if len(set(hosts)) != len(hosts) or not hosts:
            raise ValueError(f"expected distinct host names, got {list(hosts)}")
        self.id = f"fb{os.getpid()}{_letters(next(_counter))}"
        self.prefix = f"{self.id}-"
        self.domain = domain
        self.mtu = mtu
        network = ipaddress.ip_network(subnet)
        if len(hosts) > network.num_addresses - 2:
            raise ValueError(f"{len(hosts)} hosts do not fit in {subnet}")
        self._addresses = {h: str(network[i + 1]) for i, h in enumerate(hosts)}
        self._prefixlen = network.prefixlen
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = False
        self._client: ControlClient | None = None
        self.state_dir = STATE_ROOT / self.id
        self.detached = detached
        self._sysctls = dict(TUNED_TCP if sysctls is None else sysctls)
        with _lock:
            _open_beds.append(self)
        _install_handlers()
        try:
            self._start_switch(seed)
            default = link or Link()
            for index, host in enumerate(hosts):
                self._add_host(index, host, (links or {}).get(host, default))
        except BaseException:
            self.close()
            raise
        self._save_state()

    # -- construction -----------------------------------------------------------------------

    def _start_switch(self, seed: int | None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.control_path = str(self.state_dir / "control.sock")
        argv = [sys.executable, "-m", "bench.netbed.switch", "--control", self.control_path]
        if not self.detached:
            argv += ["--owner-pid", str(os.getpid())]
        if seed is not None:
            argv += ["--seed", str(seed)]
        paths = [str(_REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        with open(self.state_dir / "switch.log", "ab") as log:
            self._switch = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        assert self._switch.stdout is not None
        ready = self._switch.stdout.readline()
        if ready.strip() != b"ready":
            log_text = (self.state_dir / "switch.log").read_text(errors="replace")
            raise RuntimeError(f"the switch did not start:\n{log_text}")
        self._switch_pid = self._switch.pid
        self._client = ControlClient(self.control_path)

    def _add_host(self, index: int, host: str, link: Link) -> None:
        netns, tun = self.netns(host), f"{self.id}{index}"
        if len(tun) > 15:
            raise ValueError(f"interface name {tun!r} is too long")
        system.ip("netns", "add", netns)
        etc = system.NETNS_ETC / netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(self.hosts_file())
        address = self._addresses[host]
        self._control().request(AddHost(host, tun, address, netns, link))
        system.ip("link", "set", tun, "netns", netns)
        system.ip("link", "set", "lo", "up", netns=netns)
        system.ip("link", "set", tun, "name", "eth0", "mtu", str(self.mtu), "up", netns=netns)
        system.ip("addr", "add", f"{address}/{self._prefixlen}", "dev", "eth0", netns=netns)
        if self._sysctls:
            settings = [f"{key}={value}" for key, value in self._sysctls.items()]
            self.run(host, ["sysctl", "-q", "-w", *settings], timeout=30)

    def hosts_file(self) -> str:
        """The /etc/hosts every host of the bed sees."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for host, address in self._addresses.items():
            lines.append(f"{address}\t{host}.{self.domain} {host}")
        return "\n".join(lines) + "\n"

    # -- queries ----------------------------------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        """The hosts of the bed, in the order given."""
        return list(self._addresses)

    def address(self, host: str) -> str:
        """``host``'s IPv4 address."""
        return self._addresses[self._known(host)]

    def fqdn(self, host: str) -> str:
        """``host``'s full name: ``<host>.<domain>``."""
        return f"{self._known(host)}.{self.domain}"

    def netns(self, host: str) -> str:
        """The name of ``host``'s network namespace."""
        return f"{self.prefix}{host}"

    def stats(self) -> dict[str, HostStats]:
        """Packets, bytes and drops of every host's link, both directions."""
        return self._control().request(GetStats()).stats

    # -- processes --------------------------------------------------------------------------

    def argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside ``host``'s namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.netns(self._known(host)), *argv]

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host`` in a session of its own; ended at :meth:`close`
        (or earlier with :meth:`end`)."""
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.argv(host, argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(
        self, host: str, argv: Sequence[str], *, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` to completion; its output as text."""
        return subprocess.run(
            self.argv(host, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            start_new_session=True,
        )

    def end(self, proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
        """End ``proc``'s process group (SIGTERM, then SIGKILL after ``grace`` s); reap it."""
        _end_group(proc, grace)
        with contextlib.suppress(ValueError):
            self._procs.remove(proc)

    # -- links ------------------------------------------------------------------------------

    def set_link(
        self, host: str, link: Link | None = None, direction: Direction = "both", **changes: Any
    ) -> Link:
        """Change ``host``'s link: ``link`` whole, or ``changes`` (``delay_ms=25``, ``up=False``
        …) to its current one; returns once the switch applied it; the new link."""
        host = self._known(host)
        if link is None:
            current = self.stats()[host]
            base = current.ingress.link if direction == "ingress" else current.egress.link
            link = base.changed(**changes)
        elif changes:
            link = link.changed(**changes)
        self._control().request(SetLink(host, link, direction))
        return link

    def down(self, host: str, direction: Direction = "both") -> None:
        """Cut ``host``'s link: every packet to or from it is dropped until :meth:`up`."""
        self.set_link(host, direction=direction, up=False)

    def up(self, host: str, direction: Direction = "both") -> None:
        """Restore ``host``'s link."""
        self.set_link(host, direction=direction, up=True)

    def block(self, a: str, b: str, *, one_way: bool = False) -> list[tuple[str, str]]:
        """Partition ``a`` from ``b``: every packet between them (only ``a`` to ``b`` with
        ``one_way``) is dropped while both links stay up for every other host; returns once
        the switch applied it; the blocked (source, destination) pairs."""
        return self._set_block(a, b, one_way=one_way, blocked=True)

    def unblock(self, a: str, b: str, *, one_way: bool = False) -> list[tuple[str, str]]:
        """Undo :meth:`block`; the blocked pairs left."""
        return self._set_block(a, b, one_way=one_way, blocked=False)

    def _set_block(self, a: str, b: str, *, one_way: bool, blocked: bool) -> list[tuple[str, str]]:
        a, b = self._known(a), self._known(b)
        pairs = [(a, b)] if one_way else [(a, b), (b, a)]
        reply = None
        for src, dst in pairs:
            reply = self._control().request(Block(src, dst, blocked))
        assert reply is not None
        return list(reply.blocked)

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """End the bed's processes and switch; remove its namespaces, TUNs and hosts files."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            _end_group(proc, 10.0)
        self._procs.clear()
        with contextlib.suppress(Exception):
            self._control().request(Shutdown())
        if self._client is not None:
            self._client.close()
        switch = getattr(self, "_switch", None)
        if switch is not None:
            try:
                switch.wait(10)
            except subprocess.TimeoutExpired:
                _end_group(switch, 0.0)
            if switch.stdout is not None:
                switch.stdout.close()
        elif getattr(self, "_switch_pid", None):
            _wait_pid(self._switch_pid, 10.0)
        system.sweep(self.prefix)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        with _lock, contextlib.suppress(ValueError):
            _open_beds.remove(self)

    def __enter__(self) -> NetBed:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the CLI's beds ---------------------------------------------------------------------

    def _save_state(self) -> None:
        state = {
            "id": self.id,
            "domain": self.domain,
            "mtu": self.mtu,
            "addresses": self._addresses,
            "prefixlen": self._prefixlen,
            "switch_pid": self._switch_pid,
            "owner_pid": None if self.detached else os.getpid(),
        }
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1) + "\n")

    def detach(self) -> None:
        """Let go of the bed, leaving it running (the CLI's ``up``; a handle from
        :meth:`attach` that is done)."""
        with _lock, contextlib.suppress(ValueError):
            _open_beds.remove(self)
        self._procs.clear()
        self._closed = True
        if self._client is not None:
            self._client.close()
            self._client = None

    @classmethod
    def attach(cls, bed_id: str) -> NetBed:
        """A handle on the running bed ``bed_id`` (made by another process, e.g. the CLI)."""
        state = json.loads((STATE_ROOT / bed_id / "state.json").read_text())
        bed = cls.__new__(cls)
        bed.id, bed.prefix, bed.domain, bed.mtu = (
            bed_id,
            f"{bed_id}-",
            state["domain"],
            state["mtu"],
        )
        bed._addresses, bed._prefixlen = dict(state["addresses"]), int(state["prefixlen"])
        bed._procs, bed._closed, bed.detached = [], False, True
        bed.state_dir = STATE_ROOT / bed_id
        bed.control_path = str(bed.state_dir / "control.sock")
        bed._switch_pid = int(state["switch_pid"])
        bed._client = None
        return bed

    def _control(self) -> ControlClient:
        if self._client is None:
            self._client = ControlClient(self.control_path)
        return self._client

    def _known(self, host: str) -> str:
        if host not in self._addresses:
            raise KeyError(f"no host {host!r} in the bed (hosts: {', '.join(self._addresses)})")
        return host


def running_beds() -> list[str]:
    """The ids of the beds with a state folder (made by the CLI or still open)."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if (p / "state.json").is_file())


def stale_beds() -> list[str]:
    """The beds whose switch or owning process is gone (left by a crash; safe to remove)."""
    stale = []
    for bed_id in running_beds():
        try:
            state = json.loads((STATE_ROOT / bed_id / "state.json").read_text())
        except (OSError, ValueError):
            stale.append(bed_id)
            continue
        pids = [state.get("switch_pid"), state.get("owner_pid")]
        if not all(system.alive(int(pid)) for pid in pids if pid is not None):
            stale.append(bed_id)
    return stale


def _letters(n: int) -> str:
    """0 → 'a', 25 → 'z', 26 → 'ba' …: a short distinct tag per bed of this process."""
    text = ""
    while True:
        n, rest = divmod(n, 26)
        text = chr(97 + rest) + text
        if n == 0:
            return text


def _end_group(proc: subprocess.Popen[Any], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _wait_pid(pid: int, timeout: float) -> None:
    """Wait for ``pid`` (not our child) to exit; SIGKILL it after ``timeout`` s."""
    if system.wait_gone([pid], timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def close_all() -> None:
    """Close every bed this process still has open (at exit and on SIGTERM)."""
    with _lock:
        beds = list(_open_beds)
    for bed in reversed(beds):
        with contextlib.suppress(Exception):
            bed.close()


_handlers_installed = False


def _install_handlers() -> None:
    """Once per process: close beds at exit, and on SIGTERM (when nobody else handles it)
    close them before the process ends as SIGTERM ends it."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(close_all)
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    close_all()
    os.kill(os.getpid(), signal.SIGTERM)
