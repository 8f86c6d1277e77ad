"""High-availability cutover benchmark: kill -9 the hot server, time until the job goes on.

Run with ``.venv/bin/python -m bench.ha [--kills N] [--fast]`` (about 30 s per kill with the
default overseer settings). It provisions the HA federation of ``tests/e2e/ha_federation.py``
(overseer, server1 and server2 sharing a job store folder, two sites, all real processes over
mutual TLS on 127.0.0.1), starts a 10-round FedAvg job of the arithmetic kind, kills the hot
server (SIGKILL to its process group) while the sites hold in a round from 2 to 8, and
measures the *cutover*: from the kill to the first task of the resumed job on a site (a new
training process), with the
overseer's default timing (heartbeat 2 s, timeout 10 s, lease 8 s, margin 2 s) unless
``--fast``. Each job must still complete with the closed-form final model. Every process is
ended by process group at the end, also on failure.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import machine_info
from fedra.overseer import OverseerSettings
from tests.e2e.conftest import wait_for
from tests.e2e.ha_federation import FAST, SERVERS, make_ha_federation, start_ha_federation
from tests.e2e.jobs import arithmetic_job, expected_weights
from tests.e2e.test_ha import ROUNDS, first_new_task, held


def main() -> None:
    """Run the kills and print one line per kill, then the median."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="how many kills (default 5)")
    parser.add_argument("--fast", action="store_true", help="the tests' quick overseer timing")
    args = parser.parse_args()
    settings = FAST if args.fast else OverseerSettings().to_json()
    print(f"machine: {machine_info()}")
    print(f"overseer settings: {settings}")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="fedra-bench-ha-") as tmp:
        root = Path(tmp)
        fed = make_ha_federation(root / "fed", settings)
        try:
            start_ha_federation(fed)
            cutovers = []
            for run in range(args.kills):
                hot = fed.wait_ready(timeout=120)
                marks = root / f"marks-{run}"
                at_round = rng.randint(2, ROUNDS - 2)
                folder = arithmetic_job(
                    root / f"job-{run}",
                    marks,
                    rounds=ROUNDS,
                    gate_round=str(at_round),
                    gate_sites="site-1,site-2",
                )
                job_id = str(fed.ask(lambda s, f=folder: s.submit_job(f)))
                wait_for(lambda m=marks: held(m), 180, "the chosen round")
                killed_at = time.time()
                fed.kill(hot)
                standby = next(s for s in SERVERS if s != hot)
                wait_for(lambda s=standby: fed.hot() == s, 120, "promotion")
                (marks / "gate").write_text("open")
                fed.start(hot)
                wait_for(lambda j=job_id: fed.job(j)["status"] == "FINISHED:COMPLETED", 300, "done")
                folder = fed.ask(lambda s, j=job_id, r=run: s.download_job(j, root / f"dl-{r}"))
                with np.load(folder / "models" / "final.npz") as data:
                    np.testing.assert_allclose(data["w"], expected_weights(2, ROUNDS))
                cutover = first_new_task(marks, killed_at) - killed_at
                cutovers.append(cutover)
                print(f"kill {run + 1}: {hot} killed in round {at_round}; cutover {cutover:.1f} s")
        finally:
            fed.stop_all()
    print(
        f"cutover: median {statistics.median(cutovers):.1f} s, "
        f"min {min(cutovers):.1f} s, max {max(cutovers):.1f} s over {len(cutovers)} kills"
    )


if __name__ == "__main__":
    main()
