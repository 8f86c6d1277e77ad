"""H4: a site's claim of a newer service session no longer makes the hot server step down.

Replayed as the review did it, against a real HA federation (overseer, two servers, two sites,
mutual TLS): a client holding a site certificate of the project (site-3, provisioned but not
running: any site) connects to the hot server and sends ``session`` with ``ssid=10**9``
over and over, plus ``hello`` messages that claim the same. Before the fix the hot server
stepped down at each one and a job made no progress; now each claim is logged and makes the
server ask the overseer (rate limited), whose answer keeps it hot, and the job completes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedra.core import FedraError
from fedra.pki import TlsFiles
from fedra.protocol import Hello, Session
from fedra.transport import Connection, connect
from fedra.wire import Envelope
from tests.e2e import ha_federation
from tests.e2e.conftest import read, wait_for
from tests.e2e.ha_federation import (
    SITES,
    HaFederation,
    make_ha_federation,
    start_ha_federation,
)
from tests.e2e.jobs import arithmetic_job, expected_weights

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ATTACKER = "site-3"
HUGE = 10**9
ROUNDS = 4


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaFederation]:
    extra = f"  - {{{{name: {ATTACKER}, type: client, org: hospital-c}}}}\n"  # for .format
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ha_federation, "PROJECT", ha_federation.PROJECT + extra)
        fed = make_ha_federation(tmp_path_factory.mktemp("ha-h4"))
    try:
        start_ha_federation(fed)
        yield fed
    finally:
        fed.stop_all()


class Claimer:
    """Sends session claims to the hot server with the attacker's site certificate."""

    def __init__(self, ha: HaFederation, server: str) -> None:
        kit = ha.kits[ATTACKER]
        self.tls = TlsFiles.in_dir(kit / "startup", "client").load()
        config = read(ha.kits[server] / "startup" / "fed_server.json")
        self.target = f"127.0.0.1:{json.loads(config)['fed_learn_port']}"
        self.server = server
        self.sent = {"session": 0, "hello": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> Connection:
        ca, cert, key = self.tls
        return connect(
            self.target, ca_pem=ca, cert_pem=cert, key_pem=key, server_name=self.server, timeout=5
        )

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                # A hello that claims the newer session (the server closes that connection) ...
                conn = self._connect()
                conn.send(Envelope(Hello.KIND, {"site": ATTACKER, "ssid": HUGE}))
                self.sent["hello"] += 1
                conn.close()
                # ... and a connection that keeps sending session notices.
                conn = self._connect()
                try:
                    conn.send(Envelope(Hello.KIND, {"site": ATTACKER}))
                    for _ in range(20):
                        conn.send(Envelope(Session.KIND, {"ssid": HUGE}))
                        self.sent["session"] += 1
                        if self.stop.wait(0.2):
                            return
                finally:
                    conn.close()
            except (FedraError, OSError):
                self.stop.wait(0.2)  # refused while the server is cold: try again


def test_session_claims_from_a_site_do_not_unseat_the_hot_server(
    ha: HaFederation, tmp_path: Path
) -> None:
    hot = ha.wait_ready()
    marks = tmp_path / "marks"
    # The sites hold in round 1 until the gate opens: the attack is under way mid-job.
    folder = arithmetic_job(
        tmp_path / "h4", marks, rounds=ROUNDS, gate_round=1, gate_sites="site-1,site-2"
    )
    job_id = str(ha.ask(lambda s: s.submit_job(folder)))
    wait_for(lambda: all((marks / f"{s}.waiting").exists() for s in SITES), 120, "round 1")
    before = ha.log(hot)
    claimer = Claimer(ha, hot)
    claimer.thread.start()
    try:
        wait_for(lambda: claimer.sent["session"] >= 20, 60, "the attack to be under way")
        (marks / "gate").write_text("open")

        def done() -> bool:
            ha.check_alive()
            status = ha.job(job_id).status
            assert status in ("RUNNING", "FINISHED:COMPLETED"), status
            return status == "FINISHED:COMPLETED"

        wait_for(done, 180, "the job to complete under the attack")
    finally:
        claimer.stop.set()
        claimer.thread.join(30)
    after = ha.log(hot)[len(before) :]
    assert "stepping down" not in after, after
    assert ha.hot() == hot and ha.serving(hot)
    assert f"site {ATTACKER} claims the newer service session {HUGE}" in after
    assert "asking the overseer now" in after
    assert claimer.sent["hello"] >= 1
    folder = ha.ask(lambda s: s.download_job(job_id, tmp_path / "dl"))
    with np.load(folder / "models" / "final.npz") as data:
        np.testing.assert_allclose(data["w"], expected_weights(2, ROUNDS))
