"""High availability across hosts (issue 16): the hot server cut off from the overseer by the
network, not by a proxy, while the sites still reach it.

An overseer, ``server1`` and ``server2`` (sharing one job store), two sites and an admin, each
on a host of its own. The bed blocks only the pair (server1, overseer): every other path stays
up, so the sites keep their connections to server1 and cannot tell anything happened. The
server must step down by itself when its lease runs out, before the standby is promoted, and
the job must complete with the closed-form model.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.net.conftest import MakeBed
from tests.net.hosts_federation import (
    SITES,
    expected_w,
    hosts_federation,
    job_root,
    net_job,
    opened,
    start_federation,
    waiting,
)

pytestmark = pytest.mark.timeout(240)

ROUNDS = 3
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*", re.M)


def when(log: str, text: str) -> dt.datetime:
    """The time of the last log line that contains ``text``."""
    lines = [m for m in STAMP.finditer(log) if text in m.group(0)]
    assert lines, f"no line with {text!r}"
    return dt.datetime.strptime(lines[-1].group(1), "%Y-%m-%d %H:%M:%S,%f")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder the sites' job processes can reach (see :func:`job_root`)."""
    with job_root() as root:
        yield root


def test_the_hot_server_cut_off_from_the_overseer_steps_down(
    tmp_path: Path, make_bed: MakeBed
) -> None:
    # tmp_path first: it is removed after the bed has ended the processes writing into it.
    fed = hosts_federation(make_bed, tmp_path, servers=("server1", "server2"))
    try:
        assert start_federation(fed) == "server1"
        marks = tmp_path / "marks"
        holds = [f"{site}:{r}" for r in (1, 2) for site in SITES]
        job = net_job(tmp_path / "cutoff", marks, rounds=ROUNDS, holds=holds)
        job_id = fed.admin.ask("submit", folder=str(job))
        assert isinstance(job_id, str), fed.admin.last_error
        for hold in holds[:2]:
            fed.until(lambda h=hold: waiting(marks, h), 120, f"{hold}")  # type: ignore[misc]
            opened(marks, hold)
        fed.until(lambda: all(waiting(marks, h) for h in holds[2:]), 60, "round 2")
        fed.bed.block("server1", "overseer")
        try:
            fed.until(lambda: not fed.serving("server1"), 60, "server1 to step down")
            fed.until(lambda: fed.hot() == "server2" and fed.serving("server2"), 60, "server2")
            for hold in holds[2:]:
                opened(marks, hold)
            record = fed.finish(job_id)
        finally:
            fed.bed.unblock("server1", "overseer")
        stepped = when(fed.log("server1"), "stepping down")
        promoted = when(fed.log("server2"), "this server is hot now")
        # Never two servers acting at once: server1 stopped before server2 began.
        assert stepped < promoted, (stepped, promoted)
        assert "lease" in fed.log("server1").split("stepping down", 1)[1].splitlines()[0]
        done = [r for r in record["rounds"] if r["workflow"] == "FedAvg"]  # type: ignore[attr-defined]
        assert [r["round"] for r in done] == list(range(1, ROUNDS + 1)), done
        assert all(sorted(r["sites"]) == sorted(SITES) for r in done), done
        w = fed.final_w(job_id)
        np.testing.assert_allclose(w, expected_w(done))
        np.testing.assert_allclose(w, 5.0 / 3.0 * ROUNDS)
        assert fed.procs["server1"].poll() is None  # stepped down, still running as standby
        assert fed.bed.stats()["server1"].egress.dropped_blocked > 0
    finally:
        fed.close()
