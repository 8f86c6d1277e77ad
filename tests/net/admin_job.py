"""Run in the admin's host of a bed: wait for the federation, submit a job, report its end.

``python -m tests.net.admin_job --kit KIT --job FOLDER --sites site-1,site-2 --out DIR``
waits (polling, up to ``--timeout``) until the hot server lists exactly ``--sites``, submits
the job through :class:`fedra.admin.Session`, waits for its end, downloads it to ``--out``
and prints one JSON line: ``{"job_id", "status", "w", "seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fedra.admin import AdminError, Session
from fedra.core import FedraError


def wait_sites(kit: Path, sites: list[str], deadline: float) -> None:
    """Until the hot server lists exactly ``sites`` (through the overseer, if any)."""
    last: object = None
    while time.monotonic() < deadline:
        try:
            with Session.connect(kit, timeout=10.0) as session:
                listed = sorted(s.name for s in session.sites_status().sites)
            if listed == sorted(sites):
                return
            last = listed
        except (AdminError, FedraError, OSError) as err:
            last = err
        time.sleep(0.2)  # polling a remote condition against the deadline
    raise SystemExit(f"timed out waiting for sites {sites}; last: {last}")


def main() -> int:
    """See the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m tests.net.admin_job")
    parser.add_argument("--kit", type=Path, required=True)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--sites", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    wait_sites(args.kit, args.sites.split(","), deadline)
    start = time.monotonic()
    with Session.connect(args.kit, timeout=15.0) as session:
        job_id = session.submit_job(args.job)
        final = session.wait(job_id, timeout=max(1.0, deadline - time.monotonic()))
        seconds = time.monotonic() - start
        weights: list[float] = []
        if final.status == "FINISHED:COMPLETED":
            folder = session.download_job(job_id, args.out)
            with np.load(folder / "models" / "final.npz") as data:
                weights = [float(x) for x in data["w"]]
    result = {"job_id": job_id, "status": str(final.status), "w": weights, "seconds": seconds}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
