"""Encrypted FedAvg on a real POC federation: keys read from each process's own kit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedra.he import CIPHERTEXT, LAYOUT, SITE_CONTEXT_FILE, decrypt_params, load_context
from fedra.poc import prepare
from fedra.serverapp import load_npz
from tests.e2e.conftest import Federation, free_port

pytest.importorskip("tenseal")  # the he extra

pytestmark = pytest.mark.timeout(240)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "he-fedavg"


@pytest.fixture
def he_federation(tmp_path: Path) -> Iterator[Federation]:
    """A running POC federation (server, two sites) prepared with ``--he``."""
    fed_port, admin_port = free_port(), free_port()
    while admin_port == fed_port:
        admin_port = free_port()
    layout = prepare(tmp_path / "poc", 2, fed_port=fed_port, admin_port=admin_port, he=True)
    fed = Federation(layout, fed_port, admin_port)
    try:
        fed.start("server")
        for site in layout.sites:
            fed.start(site)
        fed.wait_sites(list(layout.sites))
        yield fed
    finally:
        fed.stop_all()


def test_he_fedavg_on_real_processes(he_federation: Federation, tmp_path: Path) -> None:
    with he_federation.session() as session:
        job_id = session.submit_job(EXAMPLE)
        final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:COMPLETED", final
        out = session.download_job(job_id, tmp_path / "download")
    saved = load_npz(out / "models" / "final.npz")
    assert set(saved) == {CIPHERTEXT, LAYOUT}  # the server stored ciphertext only
    key = he_federation.layout.site("site-1") / "startup" / SITE_CONTEXT_FILE
    weights = decrypt_params(saved, load_context(key, secret=True))["weights"]
    # Site i adds i+1 with weight i+1: +5/3 per round with 2 sites, 3 rounds.
    expected = np.arange(9, dtype=np.float64).reshape(3, 3) + 5.0
    np.testing.assert_allclose(weights, expected, rtol=1e-3)
