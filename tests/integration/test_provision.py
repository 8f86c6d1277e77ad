"""Provisioned kits run: a server and a site started from them connect over mutual TLS.

The server is named ``server1`` as in production; its ``host: 127.0.0.1`` override (the
connection-address override of project.yml) makes it listen on and be reached at the loopback
address without touching /etc/hosts, while the TLS name checked stays ``server1``. Both
processes run in sessions of their own and are ended by process group, also when the test
fails. Nothing waits by sleeping: each wait polls a condition against a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.provision import ProvisionResult, load_project, provision, verify_kit
from tests.e2e.conftest import free_port, read, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def kits(tmp_path: Path) -> ProvisionResult:
    fed_port, admin_port = free_port(), free_port()
    while admin_port == fed_port:
        admin_port = free_port()
    (tmp_path / "project.yml").write_text(
        f"""\
api_version: 1
name: itest
participants:
  - name: server1
    type: server
    org: acme
    host: 127.0.0.1
    fed_learn_port: {fed_port}
    admin_port: {admin_port}
  - {{name: site-1, type: client, org: hospital-a}}
  - {{name: site-2, type: client, org: hospital-b}}
  - {{name: admin@acme.org, type: admin, org: acme, role: project_admin}}
"""
    )
    return provision(load_project(tmp_path / "project.yml"), tmp_path / "workspace")


@contextlib.contextmanager
def started(kit: Path, module: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m module --kit kit`` in its own session; end its group on exit."""
    with open(kit / "stderr.txt", "ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--kit", str(kit)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def test_server_and_site_from_provisioned_kits_connect(kits: ProvisionResult) -> None:
    server, site = kits.kits["server1"], kits.kits["site-1"]
    log = server / "log.txt"
    with started(server, "fedra.runtime.server_parent") as server_proc:

        def listening() -> bool:
            assert server_proc.poll() is None, read(server / "stderr.txt") + read(log)
            return "listening" in read(log)

        wait_for(listening, 60, "the server to listen")
        with started(site, "fedra.runtime.site_parent") as site_proc:

            def connected() -> bool:
                assert site_proc.poll() is None, read(site / "stderr.txt") + read(site / "log.txt")
                return "site site-1 (hospital-a) connected" in read(log)

            wait_for(connected, 60, "site-1 to connect")
    # The processes wrote their logs and state next to startup/, never into it.
    verify_kit(server)
    verify_kit(site)
