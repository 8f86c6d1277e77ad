"""A provisioned federation started from real kits: shared by the e2e and security tests.

Every process runs in a session of its own and is ended by process group (SIGTERM, then
SIGKILL), also when a test fails. Nothing waits by sleeping: each wait polls a condition
against a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fedra.admin import Session
from fedra.provision import load_project, provision
from tests.e2e.conftest import free_port, read, wait_for

SERVER = "server1"
SITES = ("site-1", "site-2")
LEAD = "lead@hospital-a.org"
MEMBER = "member@hospital-a.org"
SERVER_MODULE = "fedra.runtime.server_parent"
SITE_MODULE = "fedra.runtime.site_parent"


def spawn(kit: Path, module: str) -> subprocess.Popen[bytes]:
    """``python -m module --kit kit`` in a session of its own, stderr to kit/stderr.txt."""
    with open(kit / "stderr.txt", "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--kit", str(kit)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )


def end_group(proc: subprocess.Popen[bytes]) -> None:
    """End ``proc``'s process group: SIGTERM, then SIGKILL after a grace period; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)


def free_ports() -> tuple[int, int]:
    """Two distinct free TCP ports."""
    first, second = free_port(), free_port()
    while second == first:
        second = free_port()
    return first, second


@dataclass
class ProvisionedFederation:
    """The provisioned kits of the module's federation and the processes started from them."""

    kits: dict[str, Path]
    fed_port: int
    admin_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start the server or a site from its provisioned kit."""
        module = SERVER_MODULE if name == SERVER else SITE_MODULE
        proc = spawn(self.kits[name], module)
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        """End one participant's process group."""
        end_group(self.procs.pop(name))

    def stop_all(self) -> None:
        """End every process this federation started, sites first."""
        for name in sorted(self.procs, key=lambda n: n == SERVER):
            self.stop(name)

    def diagnose(self, name: str) -> str:
        """A participant's stderr and log, for assertion messages."""
        kit = self.kits[name]
        return read(kit / "stderr.txt") + read(kit / "log.txt")

    def check_alive(self) -> None:
        """Fail, with its output, when a started process has exited."""
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited {proc.returncode}\n{self.diagnose(name)}"

    def session(self, admin: str) -> Session:
        """An admin Session with the provisioned kit of ``admin``."""
        return Session.connect(self.kits[admin], timeout=15.0)

    def connected(self) -> list[tuple[str, str]]:
        """(name, org) of every site the server lists as connected."""
        with self.session(LEAD) as session:
            return [(s.name, s.org) for s in session.sites_status().sites]

    def wait_sites(self, names: tuple[str, ...] = SITES, timeout: float = 60.0) -> None:
        """Until the server lists exactly the sites ``names`` as connected."""

        def listed() -> bool:
            self.check_alive()
            return sorted(name for name, _ in self.connected()) == sorted(names)

        wait_for(listed, timeout, f"the server to list exactly {list(names)}")


PROJECT = """\
api_version: 1
name: {name}
participants:
  - name: server1
    type: server
    org: central
    host: 127.0.0.1
    fed_learn_port: {fed_port}
    admin_port: {admin_port}
    enable_byoc: true
{others}
"""
SERVER_BYOC = "    enable_byoc: true\n"

MAIN_PARTICIPANTS = f"""\
  - {{name: site-1, type: client, org: hospital-a, enable_byoc: true}}
  - {{name: site-2, type: client, org: hospital-b, enable_byoc: true}}
  - {{name: {LEAD}, type: admin, org: hospital-a, role: lead}}
  - {{name: {MEMBER}, type: admin, org: hospital-a, role: member}}"""


def provision_project(
    folder: Path,
    name: str,
    fed_port: int,
    admin_port: int,
    others: str,
    *,
    server_byoc: bool = True,
) -> dict[str, Path]:
    """Provision ``folder/project.yml`` into ``folder/workspace``; each participant's kit.

    ``server_byoc``: whether the server runs jobs' own code (its ``enable_byoc``)."""
    folder.mkdir(parents=True, exist_ok=True)
    project_file = folder / "project.yml"
    text = PROJECT.format(name=name, fed_port=fed_port, admin_port=admin_port, others=others)
    project_file.write_text(text if server_byoc else text.replace(SERVER_BYOC, "", 1))
    result = provision(load_project(project_file), folder / "workspace", python=sys.executable)
    return result.kits
