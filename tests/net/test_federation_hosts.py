"""A federation across hosts: overseer, server, two sites and an admin, each in a host of its
own with its own name and address, over WAN links (1 Gbit/s, 50 ms round trip).

The kits come from a project.yml that names the server and the overseer by their host names
(``server1.fedra.test``, ``overseer.fedra.test``): the certificates are issued for those names
and every participant resolves them through the bed's hosts files, not a local-host override.
The admin submits the arithmetic FedAvg job from its own host; the final model must be the
closed form.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.netbed import PROFILES, NetBed
from fedra.provision import load_project, provision
from tests.e2e.conftest import read, wait_for
from tests.e2e.ha_federation import FAST
from tests.e2e.jobs import arithmetic_job, expected_weights
from tests.net.conftest import MakeBed
from tests.net.hosts_federation import job_root as hosts_job_root

pytestmark = pytest.mark.timeout(180)

HOSTS = ["overseer", "server1", "site-1", "site-2", "admin"]
SITES = ("site-1", "site-2")
ADMIN = "lead@hospital-a.org"
ROUNDS = 2
PROJECT = """\
api_version: 1
name: net-project
participants:
  - {{name: {overseer}, type: overseer, org: central, port: 8443}}
  - {{name: {server}, type: server, org: central, fed_learn_port: 8002, admin_port: 8003,
     enable_byoc: true}}
  - {{name: site-1, type: client, org: hospital-a, enable_byoc: true}}
  - {{name: site-2, type: client, org: hospital-b, enable_byoc: true}}
  - {{name: {admin}, type: admin, org: hospital-a, role: lead}}
"""
MODULES = {
    "overseer": ["-m", "fedra.cli", "overseer", "start"],
    "server1": ["-m", "fedra.runtime.server_parent"],
    "site-1": ["-m", "fedra.runtime.site_parent"],
    "site-2": ["-m", "fedra.runtime.site_parent"],
}


def provision_for(bed: NetBed, root: Path) -> dict[str, Path]:
    """Kits for the bed's hosts, by bed host name (the admin's under "admin")."""
    project = root / "project.yml"
    server, overseer = bed.fqdn("server1"), bed.fqdn("overseer")
    project.write_text(PROJECT.format(overseer=overseer, server=server, admin=ADMIN))
    kits = provision(load_project(project), root / "workspace", python=sys.executable).kits
    (kits[overseer] / "local" / "overseer.json").write_text(json.dumps(FAST))
    names = {"overseer": overseer, "server1": server, "admin": ADMIN}
    return {host: kits[names.get(host, host)] for host in HOSTS}


@pytest.fixture
def job_root() -> Iterator[Path]:
    """tests/net/hosts_federation.py's job folder, as a fixture."""
    with hosts_job_root() as folder:
        yield folder


def test_a_job_across_hosts_on_wan_links(job_root: Path, make_bed: MakeBed) -> None:
    # job_root first: it is removed after the bed has ended the processes writing into it.
    bed = make_bed(HOSTS, PROFILES["wan"].link)
    tmp_path = job_root
    kits = provision_for(bed, tmp_path)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(host: str) -> None:
        argv = [sys.executable, *MODULES[host], "--kit", str(kits[host])]
        with open(kits[host] / "stderr.txt", "ab") as stderr:
            procs[host] = bed.popen(host, argv, stdout=subprocess.DEVNULL, stderr=stderr)

    def logs() -> str:
        return "\n".join(f"--- {h}\n{read(kits[h] / 'stderr.txt')}" for h in procs)

    def up(host: str, text: str) -> bool:
        assert procs[host].poll() is None, f"{host} exited\n{logs()}"
        return text in read(kits[host] / "log.txt")

    start("overseer")
    start("server1")
    wait_for(lambda: up("server1", "this server is hot now"), 60, f"server1 hot\n{logs()}")
    for site in SITES:
        start(site)
    job = arithmetic_job(tmp_path / "arith", tmp_path / "marks", rounds=ROUNDS)
    submit = ["--kit", str(kits["admin"]), "--job", str(job), "--sites", ",".join(SITES)]
    argv = [sys.executable, "-m", "tests.net.admin_job", *submit, "--out", str(tmp_path / "out")]
    done = bed.run("admin", argv, timeout=150, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs()}"
    result = json.loads(done.stdout)
    assert result["status"] == "FINISHED:COMPLETED", f"{result}\n{logs()}"
    np.testing.assert_allclose(result["w"], expected_weights(2, ROUNDS))
    # Every participant's traffic crossed the switch: each host's link carried packets.
    stats = bed.stats()
    assert all(stats[h].egress.packets > 0 and stats[h].ingress.packets > 0 for h in HOSTS)
    assert bed.address("server1") in read(Path(f"/etc/netns/{bed.netns('site-1')}/hosts"))
