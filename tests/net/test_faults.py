"""Faults across hosts (issue 16): real processes in namespaces, faults made by the network.

One federation for the module (:mod:`tests.net.hosts_federation`): an overseer, ``server1``,
two sites and an admin, each on a host of its own, plus a spare host ``server3``. Each test
runs a FedAvg job whose final model is a closed form of the sites each round counted; the job
records those sites per round (``run_info.rounds[].sites``), so "no result counted twice" is
checked exactly: the final model must be the sum of the recorded rounds. Each test leaves
the federation as it found it (links up, nothing blocked), except the last, which moves the
server.

The sites hold in chosen rounds (``holds``) until the test lets them go, so that each fault
lands mid-round however fast or slow the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.netbed import NetBed
from tests.net.conftest import require_beds
from tests.net.hosts_federation import (
    SITES,
    HostsFederation,
    expected_w,
    hosts_federation,
    job_root,
    net_job,
    opened,
    start_federation,
    waiting,
)

pytestmark = pytest.mark.timeout(240)

#: How long a site's link stays down. Issue 16 asks for 30 s; see OUTAGE_NOTE.
OUTAGE_S = 30.0
#: Seconds a round waits for the other sites once min_clients results are in.
WAIT_AFTER_MIN_S = 5.0
#: Holds that put a fault in round 2 and bring the cut site back for round 4 (see
#: :func:`cut_and_heal`).
HOLDS = ("site-1:1", "site-2:1", "site-2:2", "site-1:3", "site-1:4", "site-2:4")


@pytest.fixture(scope="module")
def fed() -> Iterator[HostsFederation]:
    require_beds()
    beds: list[NetBed] = []

    def make(hosts: list[str], link: object = None) -> NetBed:
        beds.append(NetBed(hosts, link))  # type: ignore[arg-type]
        return beds[-1]

    with job_root() as root:
        federation = hosts_federation(make, root, extra_hosts=["server3"], shared_store=True)
        try:
            start_federation(federation)
            yield federation
        finally:
            federation.close()
            for bed in beds:
                bed.close()


def check_exact(fed: HostsFederation, job_id: str, rounds: int) -> list[dict[str, object]]:
    """The job completed; each round counted each site at most once; the final model is the
    closed form of the sites counted. The training rounds, as recorded."""
    record = fed.finish(job_id)
    done = [r for r in record["rounds"] if r["workflow"] == "FedAvg"]  # type: ignore[attr-defined]
    assert [r["round"] for r in done] == list(range(1, rounds + 1)), f"{done}\n{fed.tails()}"
    for r in done:
        assert r["sites"] and len(set(r["sites"])) == len(r["sites"]), r
        assert set(r["sites"]) <= set(SITES), r
    w = fed.final_w(job_id)
    np.testing.assert_allclose(w, expected_w(done), err_msg=f"rounds: {done}")
    return done


def submit(fed: HostsFederation, name: str, **options: object) -> tuple[str, Path]:
    marks = fed.root / f"marks-{name}"
    folder = net_job(fed.root / name, marks, **options)  # type: ignore[arg-type]
    job_id = fed.admin.ask("submit", folder=str(folder))
    assert isinstance(job_id, str), f"submit failed: {fed.admin.last_error}\n{fed.tails()}"
    return job_id, marks


def both_go(fed: HostsFederation, marks: Path, round_num: int) -> None:
    """Once both sites hold in ``round_num`` (their job processes run), let them go."""
    holds = [f"{site}:{round_num}" for site in SITES]
    fed.until(lambda: all(waiting(marks, h) for h in holds), 120, f"both sites in {round_num}")
    for hold in holds:
        opened(marks, hold)


def cut_and_heal(
    fed: HostsFederation,
    name: str,
    cut: Callable[[], None],
    heal: Callable[[], None],
    outage: Callable[[], bool],
) -> list[dict[str, object]]:
    """A 4-round job with min_clients=1: ``cut`` site-2 off while it holds in round 2 (then
    let it answer, into the cut); ``heal`` once ``outage()`` says so; site-1 holds in round 3
    until site-2 is listed again; both must train in round 4. The recorded rounds."""
    site_pid = fed.procs["site-2"].pid
    job_id, marks = submit(
        fed,
        name,
        rounds=4,
        min_clients=1,
        wait_after_min=WAIT_AFTER_MIN_S,
        holds=HOLDS,
    )
    both_go(fed, marks, 1)
    fed.until(lambda: waiting(marks, "site-2:2"), 60, "site-2 in round 2")
    cut()
    try:
        opened(marks, "site-2:2")  # its answer goes into the cut
        fed.until(lambda: fed.rounds_done(job_id) >= 2, 60, "round 2 without site-2")
        fed.until(outage, 120, "the outage")
    finally:
        heal()
    healed = time.monotonic()
    fed.until(lambda: fed.sites() == sorted(SITES), 120, "site-2 listed again")
    print(f"{name}: site-2 listed again {time.monotonic() - healed:.1f} s after the heal")
    opened(marks, "site-1:3")
    both_go(fed, marks, 4)
    done = check_exact(fed, job_id, rounds=4)
    assert done[0]["sites"] != [] and done[1]["sites"] == ["site-1"], done
    assert sorted(done[3]["sites"]) == sorted(SITES), done  # type: ignore[call-overload]
    # It rejoined by itself: the same site process throughout.
    assert fed.procs["site-2"].pid == site_pid and fed.procs["site-2"].poll() is None
    return done


def test_a_site_link_down_mid_round_then_back(fed: HostsFederation) -> None:
    """min_clients=1 and a 5 s wait after it: the round the cut site is in completes without
    it; its answer, sent into the dead link, is not counted; the site's connection breaks
    (TCP user timeout, gRPC keepalive) during a 30 s outage, and it comes back by itself and
    trains again."""
    fed.wait_ready()
    down_at = [0.0]

    def cut() -> None:
        fed.bed.down("site-2")
        down_at[0] = time.monotonic()

    done = cut_and_heal(
        fed,
        "outage",
        cut,
        lambda: fed.bed.up("site-2"),
        lambda: time.monotonic() - down_at[0] >= OUTAGE_S,
    )
    assert "lost the server connection" in fed.log("site-2"), fed.tails()
    print(f"rounds: {done}")


def test_loss_and_jitter_on_a_site_link(fed: HostsFederation) -> None:
    """5% loss each way and 200 ms of jitter on site-1's link: every round counts both sites
    and the model is the closed form of an undisturbed run."""
    fed.wait_ready()
    fed.bed.set_link("site-1", delay_ms=12.5, jitter_ms=200.0, loss=0.05)
    try:
        job_id, marks = submit(fed, "lossy", rounds=3, holds=("site-1:1", "site-2:1"))
        both_go(fed, marks, 1)
        done = check_exact(fed, job_id, rounds=3)
        stats = fed.bed.stats()["site-1"]
    finally:
        fed.bed.set_link("site-1", delay_ms=0.0, jitter_ms=0.0, loss=0.0)
    assert all(sorted(r["sites"]) == sorted(SITES) for r in done), done  # type: ignore[call-overload]
    assert stats.egress.dropped_loss + stats.ingress.dropped_loss > 0, stats


def test_a_site_that_reaches_the_overseer_but_not_the_server(
    fed: HostsFederation,
) -> None:
    """An asymmetric partition: site-2 still heartbeats the overseer, but cannot reach
    server1. Only the overseer's word moves a server, and the overseer sees server1 live: it
    stays hot in the same session. The server drops the silent site; with min_clients=1 the
    rounds go on without it; the site keeps trying and is back once the path heals."""
    hot = fed.wait_ready()
    before = fed.admin.ask("overseer")

    def gone() -> bool:
        return "site-2" not in (fed.sites() or ["site-2"])

    cut_and_heal(
        fed,
        "asymmetric",
        lambda: fed.bed.block("site-2", hot),
        lambda: fed.bed.unblock("site-2", hot),
        gone,
    )
    after = fed.admin.ask("overseer")
    assert isinstance(before, dict) and isinstance(after, dict)
    assert (after["hot"], after["ssid"]) == (before["hot"], before["ssid"]), (before, after)
    assert "cannot reach the server" in fed.log("site-2"), fed.tails()


def test_the_server_moved_to_another_host_between_restarts(
    fed: HostsFederation,
) -> None:
    """server1 stops mid-job and comes back on host server3 (another name, another address)
    with a kit provisioned for it there (``host: server3.fedra.test``; its certificate names
    both). The sites learn the new address from the overseer and follow; the job resumes
    from its snapshot and completes with the closed-form model."""
    fed.wait_ready()
    rounds = 3
    job_id, marks = submit(fed, "moved", rounds=rounds, holds=("site-1:1", "site-2:1", *HOLDS[2:3]))
    both_go(fed, marks, 1)
    fed.until(lambda: waiting(marks, "site-2:2"), 60, "site-2 in round 2")
    fed.stop("server1")
    fed.move("server1", "server3")
    fed.start("server1", host="server3")
    fed.until(lambda: fed.serving("server1"), 60, "server1 hot on server3")
    opened(marks, "site-2:2")  # the round is run again: its earlier hold file stays open
    done = check_exact(fed, job_id, rounds=rounds)
    # Every round counted both sites: the model of an undisturbed run.
    assert all(sorted(r["sites"]) == sorted(SITES) for r in done), done  # type: ignore[call-overload]
    for site in SITES:
        text = fed.log(site)
        assert f"at {fed.bed.fqdn('server3')}:8002" in text, fed.tails()
