"""M7: one live connection per site identity, replayed with real processes and certificates.

Before the fix, a second connection with a site's certificate pushed the live one off (and the
real site, reconnecting, pushed the second one off in turn: 2,516 disconnects in 30 s). The rule
now: the live connection keeps its place while the site heartbeats; a second one is refused
with a one-line reason and a line in the server's log. A site that restarts is back at once.
"""

from __future__ import annotations

import signal
import time

import pytest

from fedra.pki import TlsFiles
from fedra.transport import ConnectError, connect
from tests.e2e.conftest import read, wait_for
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.conftest import PROJECT_ADMIN, SITE_A, SITE_B

pytestmark = pytest.mark.timeout(300)

ATTEMPTS = 20


def connected_sites(fed: ProvisionedFederation) -> list[str]:
    with fed.session(PROJECT_ADMIN) as admin:
        return sorted(s.name for s in admin.sites_status().sites)


def second_connection(fed: ProvisionedFederation, site: str) -> None:
    """Connect to the server's FL port with ``site``'s own kit, as a thief of its key would."""
    ca, cert, key = TlsFiles.in_dir(fed.kits[site] / "startup", "client").load()
    conn = connect(
        f"127.0.0.1:{fed.fed_port}", ca_pem=ca, cert_pem=cert, key_pem=key, server_name=SERVER
    )
    conn.close()


def test_a_second_connection_with_a_live_sites_certificate_is_refused(
    hostile: ProvisionedFederation,
) -> None:
    server_log = hostile.kits[SERVER] / "log.txt"
    site_log = hostile.kits[SITE_A] / "log.txt"
    server_before, site_before = len(read(server_log)), len(read(site_log))
    for _ in range(ATTEMPTS):
        with pytest.raises(ConnectError, match=rf"{SITE_A} is already connected"):
            second_connection(hostile, SITE_A)
    hostile.check_alive()
    assert connected_sites(hostile) == [SITE_A, SITE_B]
    server_new = read(server_log)[server_before:]
    refusals = [
        line
        for line in server_new.splitlines()
        if f"refused site {SITE_A}" in line and "already connected" in line
    ]
    assert len(refusals) == ATTEMPTS, server_new
    assert server_new.count(f"site {SITE_A} disconnected") == 0, server_new
    assert "lost the server connection" not in read(site_log)[site_before:]


def test_a_site_that_restarts_is_back_at_once(hostile: ProvisionedFederation) -> None:
    """The other side of the rule: a killed site's connection ends with its process, so the
    restarted site is not refused as a duplicate and is listed again within seconds."""
    proc = hostile.procs[SITE_B]
    proc.send_signal(signal.SIGKILL)
    proc.wait(15)
    hostile.procs.pop(SITE_B)
    started = time.monotonic()
    hostile.start(SITE_B)
    wait_for(lambda: connected_sites(hostile) == [SITE_A, SITE_B], 60, f"{SITE_B} back")
    assert time.monotonic() - started < 45
