"""A high-availability federation of real processes: overseer, two servers, two sites, an admin.

Provisioned from a project.yml with an overseer and ``server1``/``server2`` sharing one job
store folder, all on 127.0.0.1 with free ports. Each server reaches the overseer through a
TCP proxy of its own (``local/overseer.json``), so a test can cut one server off the overseer
while the sites still reach it. Used by ``tests/e2e/test_ha.py`` and ``bench/ha.py``.

Every process runs in a session of its own and is ended by process group; waits poll a
condition against a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedra.admin import AdminError, JobInfo, Session
from fedra.core import FedraError
from fedra.overseer import client_for_kit
from fedra.provision import load_project, provision
from tests.e2e.conftest import free_port, read, wait_for

SERVERS = ("server1", "server2")
SITES = ("site-1", "site-2")
ADMIN = "admin@central.org"
OVERSEER = "overseer"
MODULES = {
    "server1": ["-m", "fedra.runtime.server_parent"],
    "server2": ["-m", "fedra.runtime.server_parent"],
    "site-1": ["-m", "fedra.runtime.site_parent"],
    "site-2": ["-m", "fedra.runtime.site_parent"],
    OVERSEER: ["-m", "fedra.cli", "overseer", "start"],
}
#: Quick timing for tests: a silent hot server is replaced after 5 s.
FAST = {"heartbeat_interval": 0.5, "heartbeat_timeout": 5.0, "lease": 4.0, "lease_margin": 1.0}

PROJECT = """\
api_version: 1
name: ha-project
participants:
  - {{name: overseer, type: overseer, org: central, host: 127.0.0.1, port: {overseer_port}}}
  - name: server1
    type: server
    org: central
    host: 127.0.0.1
    fed_learn_port: {p1}
    admin_port: {p2}
    enable_byoc: true
    job_store: {{backend: sqlite, path: "{shared}"}}
  - name: server2
    type: server
    org: central
    host: 127.0.0.1
    fed_learn_port: {p3}
    admin_port: {p4}
    enable_byoc: true
    job_store: {{backend: sqlite, path: "{shared}"}}
  - {{name: site-1, type: client, org: hospital-a, enable_byoc: true}}
  - {{name: site-2, type: client, org: hospital-b, enable_byoc: true}}
  - {{name: {admin}, type: admin, org: central, role: project_admin}}
"""


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; :meth:`cut` drops all connections until :meth:`heal`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._open.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        self._open.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def heal(self) -> None:
        """Forward again."""
        self._open.set()

    def close(self) -> None:
        """Stop listening."""
        self._closed = True
        self.cut()
        self._listener.close()


@dataclass
class HaFederation:
    """The kits of the HA project and the processes started from them."""

    kits: dict[str, Path]
    shared: Path
    proxies: dict[str, TcpProxy]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start a participant from its kit, in a session of its own."""
        kit = self.kits[name]
        with open(kit / "stderr.txt", "ab") as stderr:
            self.procs[name] = subprocess.Popen(
                [sys.executable, *MODULES[name], "--kit", str(kit)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a participant's process group and reap it."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        """End everything this federation started: sites, servers, then the overseer."""
        order = [*SITES, *SERVERS, OVERSEER]
        for name in [n for n in order if n in self.procs]:
            self.kill(name, signal.SIGTERM)
        for proxy in self.proxies.values():
            proxy.close()

    def log(self, name: str) -> str:
        """A participant's log and stderr."""
        return read(self.kits[name] / "log.txt") + read(self.kits[name] / "stderr.txt")

    def check_alive(self) -> None:
        """Fail, with its output, when a started process has exited."""
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited {proc.returncode}\n{self.log(name)}"

    def overseer_state(self) -> Any:
        """The overseer's full state, asked with the admin's kit."""
        return client_for_kit(self.kits[ADMIN]).state()

    def hot(self) -> str | None:
        """The server the overseer names hot (None when it has none or cannot be reached)."""
        try:
            state = self.overseer_state()
        except FedraError:
            return None
        return state.hot.name if state.hot is not None else None

    def serving(self, name: str) -> bool:
        """Whether server ``name`` says it is hot now (from its log)."""
        text = read(self.kits[name] / "log.txt")
        return text.rfind("this server is hot now") > text.rfind("stepping down")

    def session(self) -> Session:
        """An admin session with the hot server (found through the overseer)."""
        return Session.connect(self.kits[ADMIN], timeout=10.0)

    def ask(self, fn: Callable[[Session], Any], timeout: float = 60.0) -> Any:
        """Run ``fn`` on a fresh session, retrying while the servers switch over."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.session() as session:
                    return fn(session)
            except (AdminError, FedraError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def connected_sites(self) -> list[str]:
        """The sites the hot server lists as connected."""
        status = self.ask(lambda s: s.sites_status())
        return sorted(site.name for site in status.sites)

    def wait_ready(self, timeout: float = 90.0) -> str:
        """Until a server is hot and both sites are connected to it; return its name."""

        def ready() -> bool:
            self.check_alive()
            name = self.hot()
            if name is None or not self.serving(name):
                return False
            return self.connected_sites() == sorted(SITES)

        wait_for(ready, timeout, "a hot server with both sites connected")
        return str(self.hot())

    def job(self, job_id: str) -> JobInfo:
        """A job's record, from whichever server is hot."""
        return self.ask(lambda s: s.get_job(job_id))


def make_ha_federation(root: Path, settings: dict[str, float] | None = None) -> HaFederation:
    """Provision the HA project under ``root``; nothing is started."""
    ports = set()
    while len(ports) < 5:
        ports.add(free_port())
    overseer_port, p1, p2, p3, p4 = sorted(ports)
    shared = root / "shared-store"
    shared.mkdir(parents=True)
    project = root / "project.yml"
    project.write_text(
        PROJECT.format(
            overseer_port=overseer_port, p1=p1, p2=p2, p3=p3, p4=p4, shared=shared, admin=ADMIN
        )
    )
    kits = provision(load_project(project), root / "workspace", python=sys.executable).kits
    (kits[OVERSEER] / "local" / "overseer.json").write_text(json.dumps(settings or FAST))
    proxies = {}
    for server in SERVERS:
        proxies[server] = TcpProxy(overseer_port)
        url = f"https://127.0.0.1:{proxies[server].port}/api/v1"
        (kits[server] / "local" / "overseer.json").write_text(json.dumps({"url": url}))
    return HaFederation(kits, shared, proxies)


def start_ha_federation(fed: HaFederation) -> str:
    """Start the overseer, server1 (hot), server2 (standby) and the sites; the hot server."""
    fed.start(OVERSEER)
    fed.start("server1")
    wait_for(lambda: fed.hot() == "server1" and fed.serving("server1"), 60, "server1 hot")
    fed.start("server2")
    for site in SITES:
        fed.start(site)
    return fed.wait_ready()
