"""A provisioned server and site tuned through ``project.yml`` and ``local/network.json``:
the kit stays valid (``local/`` is not signed), both start, the site connects, and the
server's FL port runs with the window the local file asks for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.pki import verify_kit
from tests.e2e.conftest import read, wait_for
from tests.e2e.provisioned import (
    LEAD,
    SERVER,
    ProvisionedFederation,
    free_ports,
    provision_project,
)

pytestmark = pytest.mark.timeout(300)

PARTICIPANTS = f"""\
    network: {{receive_window: 4194304}}
  - {{name: site-1, type: client, org: hospital-a, network: {{receive_window: 8388608}}}}
  - {{name: {LEAD}, type: admin, org: hospital-a, role: lead}}"""


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[ProvisionedFederation]:
    fed_port, admin_port = free_ports()
    kits = provision_project(tmp_path, "net-project", fed_port, admin_port, PARTICIPANTS)
    federation = ProvisionedFederation(kits, fed_port, admin_port)
    try:
        yield federation
    finally:
        federation.stop_all()


def test_a_server_tuned_in_local_starts_and_serves_its_site(fed: ProvisionedFederation) -> None:
    server_kit = fed.kits[SERVER]
    signed = json.loads((server_kit / "startup" / "fed_server.json").read_text())
    assert signed["network"] == {"receive_window": 4 << 20}  # from project.yml, signed
    (server_kit / "local" / "network.json").write_text(
        json.dumps({"path_mbit": 1000, "path_rtt_ms": 50})  # a WAN: 4 x 6.25 MB
    )
    verify_kit(server_kit)  # local/ is the participant's own: the signature still holds
    fed.start(SERVER)

    def listening() -> bool:
        fed.check_alive()
        return "listening" in read(server_kit / "log.txt")

    wait_for(listening, 60, "server1 to listen")
    assert "FL port" in read(server_kit / "log.txt")
    assert "(receive window 25034752 bytes)" in read(server_kit / "log.txt")
    fed.start("site-1")
    fed.wait_sites(("site-1",))
    fed.check_alive()
    assert "tampered" not in read(server_kit / "stderr.txt")
