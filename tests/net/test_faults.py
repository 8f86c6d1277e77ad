"""Faults across hosts (issue 16): real processes in namespaces, faults made by the network.

Every test runs a provisioned federation on the hosts of a bed (:mod:`tests.net.
hosts_federation`) and a FedAvg job whose final model is a closed form of the sites each round
counted; the job records those sites per round (``run_info.rounds[].sites``), so "no result
counted twice" is checked exactly: the final model must be the sum of the recorded rounds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.net.conftest import MakeBed
from tests.net.hosts_federation import (
    SITES,
    HostsFederation,
    expected_w,
    hosts_federation,
    net_job,
    opened,
    start_federation,
    waiting,
)

pytestmark = pytest.mark.timeout(240)

#: How long a site's link stays down (issue 16: 30 s).
OUTAGE_S = 30.0
#: Seconds a round waits for the other sites once min_clients results are in.
WAIT_AFTER_MIN_S = 5.0


@pytest.fixture
def federation(make_bed: MakeBed, tmp_path: Path) -> Iterator[HostsFederation]:
    fed = hosts_federation(make_bed, tmp_path)
    try:
        yield fed
    finally:
        fed.close()


def rounds_of(fed: HostsFederation, job_id: str) -> list[dict[str, object]]:
    rounds = fed.job(job_id).get("rounds") or []
    return [r for r in rounds if r.get("workflow") == "FedAvg"]  # type: ignore[union-attr]


def check_exact(fed: HostsFederation, job_id: str, rounds: int) -> list[dict[str, object]]:
    """The job completed; each round counted each site at most once; the final model is the
    closed form of the sites counted."""
    record = fed.finish(job_id)
    done = [r for r in record["rounds"] if r["workflow"] == "FedAvg"]  # type: ignore[attr-defined]
    assert [r["round"] for r in done] == list(range(1, rounds + 1)), done
    for r in done:
        assert r["sites"] and len(set(r["sites"])) == len(r["sites"]), r
        assert set(r["sites"]) <= set(SITES), r
    w = fed.final_w(job_id)
    np.testing.assert_allclose(w, expected_w(done), err_msg=f"rounds: {done}")
    return done


def test_a_site_link_down_mid_round_then_back(federation: HostsFederation, tmp_path: Path) -> None:
    """min_clients=1 with a 5 s wait after it: the round the cut site is in completes
    without it; its late result is not counted; it rejoins by itself and trains again."""
    fed = federation
    start_federation(fed)
    site_pid = fed.procs["site-2"].pid
    marks = tmp_path / "marks"
    holds = ["site-2:2", "site-1:3", "site-1:4", "site-2:4"]
    job = net_job(
        tmp_path / "cut",
        marks,
        rounds=4,
        min_clients=1,
        wait_after_min=WAIT_AFTER_MIN_S,
        holds=holds,
    )
    job_id = str(fed.admin.ask("submit", folder=str(job)))
    fed.until(lambda: waiting(marks, "site-2:2"), 120, "site-2 in round 2")
    fed.bed.down("site-2")
    down_at = time.monotonic()
    opened(marks, "site-2:2")  # it answers into a dead link
    fed.until(lambda: fed.rounds_done(job_id) >= 2, 60, "round 2 without site-2")
    assert rounds_of(fed, job_id)[1]["sites"] == ["site-1"]
    fed.until(lambda: time.monotonic() - down_at >= OUTAGE_S, OUTAGE_S + 5, "the outage")
    fed.bed.up("site-2")
    up_at = time.monotonic()
    fed.until(lambda: fed.sites() == sorted(SITES), 120, "site-2 listed again")
    rejoined_s = time.monotonic() - up_at
    opened(marks, "site-1:3")
    fed.until(lambda: waiting(marks, "site-2:4") and waiting(marks, "site-1:4"), 60, "round 4")
    opened(marks, "site-1:4")
    opened(marks, "site-2:4")
    done = check_exact(fed, job_id, rounds=4)
    assert done[1]["sites"] == ["site-1"]
    assert sorted(done[3]["sites"]) == sorted(SITES)  # type: ignore[call-overload]
    assert fed.procs["site-2"].pid == site_pid and fed.procs["site-2"].poll() is None
    print(f"site-2 listed again {rejoined_s:.1f} s after its link came back; rounds: {done}")
