"""High availability under fault injection: real overseer, two servers, two sites, mTLS.

The servers share one job store folder. Each fault hits a running 10-round FedAvg job of the
arithmetic kind, whose final model has a closed form, so "the job completes with the same
final model as an uninterrupted run" is checked exactly.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import read, wait_for
from tests.e2e.ha_federation import (
    OVERSEER,
    SERVERS,
    SITES,
    HaFederation,
    make_ha_federation,
    start_ha_federation,
)
from tests.e2e.jobs import arithmetic_job, expected_weights

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

ROUNDS = 10
#: How many times in a row the hot server is killed (each time in a new job).
KILLS = int(os.environ.get("FEDRA_HA_KILLS", "10"))


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaFederation]:
    fed = make_ha_federation(tmp_path_factory.mktemp("ha"))
    try:
        start_ha_federation(fed)
        yield fed
    finally:
        fed.stop_all()


def other(server: str) -> str:
    return next(s for s in SERVERS if s != server)


def rounds_done(ha: HaFederation, job_id: str) -> int:
    return len((ha.job(job_id).run_info or {}).get("rounds") or [])


def tasks(marks: Path) -> dict[str, list[tuple[float, int]]]:
    """(time, pid of the training process) of every task each site began."""
    out: dict[str, list[tuple[float, int]]] = {}
    for site in SITES:
        lines = read(marks / f"{site}.tasks").splitlines()
        out[site] = [(float(t), int(pid)) for t, pid in (line.split() for line in lines)]
    return out


def held(marks: Path) -> bool:
    """Both sites wait at the job's gate."""
    return all((marks / f"{site}.waiting").exists() for site in SITES)


def first_new_task(marks: Path, since: float) -> float:
    """When the first task from a new training process (the resumed job) began."""
    seen = tasks(marks)
    old = {pid for times in seen.values() for t, pid in times if t <= since}
    return min(t for times in seen.values() for t, pid in times if pid not in old)


def finish_and_check(ha: HaFederation, job_id: str, marks: Path, faults: int, dest: Path) -> None:
    """The job completes with the closed-form model; at most the rounds in flight repeat."""

    def final() -> bool:
        status = ha.job(job_id).status
        assert status in ("SUBMITTED", "DISPATCHED", "RUNNING", "FINISHED:COMPLETED"), status
        return status == "FINISHED:COMPLETED"

    wait_for(final, 240, f"job {job_id} to complete")
    # The job's record survives every cutover: each round listed once, in order.
    rounds = (ha.job(job_id).run_info or {}).get("rounds") or []
    assert [(r["workflow"], r["round"]) for r in rounds] == [
        ("FedAvg", n) for n in range(1, ROUNDS + 1)
    ] + [("FedAvg (final validation)", ROUNDS)]
    folder = ha.ask(lambda s: s.download_job(job_id, dest))
    with np.load(folder / "models" / "final.npz") as data:
        np.testing.assert_allclose(data["w"], expected_weights(2, ROUNDS))
    workspace = ha.shared / "jobs" / job_id / "workspace"
    assert (workspace / "models" / "final.npz").is_file()  # the run folder is on the shared store
    # Snapshots go once the job's end is recorded (just after the status turns final).
    wait_for(lambda: not (workspace / "snapshots").exists(), 30, "the snapshots to be dropped")
    for site, times in tasks(marks).items():
        # ROUNDS training tasks and one validation, plus at most one repeated round per fault.
        assert len(times) <= ROUNDS + 1 + faults, (site, len(times))


def submit(ha: HaFederation, tmp_path: Path, name: str, **options: object) -> tuple[str, Path]:
    marks = tmp_path / f"marks-{name}"
    folder = arithmetic_job(tmp_path / name, marks, rounds=ROUNDS, **options)  # type: ignore[arg-type]
    return str(ha.ask(lambda s: s.submit_job(folder))), marks


def test_killing_the_hot_server_mid_job_resumes_on_the_standby(
    ha: HaFederation, tmp_path: Path
) -> None:
    rng = random.Random(2026)
    cutovers = []
    for run in range(KILLS):
        hot = ha.wait_ready()
        # The sites hold in the chosen round until the gate opens: the kill lands mid-round
        # however fast or slow the machine is.
        at_round = rng.randint(1, ROUNDS - 1)
        job_id, marks = submit(
            ha, tmp_path, f"kill-{run}", gate_round=at_round, gate_sites="site-1,site-2"
        )
        wait_for(lambda m=marks: held(m), 120, f"round {at_round}")
        killed_at = time.time()
        ha.kill(hot)  # SIGKILL: no goodbye to the overseer, no cleanup
        wait_for(lambda h=hot: ha.hot() == other(h), 60, "the standby to be promoted")
        (marks / "gate").write_text("open")  # the repeated round goes through
        ha.start(hot)  # back as the standby
        finish_and_check(ha, job_id, marks, faults=1, dest=tmp_path / f"dl-{run}")
        cutovers.append(first_new_task(marks, killed_at) - killed_at)
    print(f"cutover (kill -> first task of the resumed job): {[round(c, 1) for c in cutovers]}")
    assert len(cutovers) == KILLS


def test_promote_sp_moves_a_running_job_to_the_other_server(
    ha: HaFederation, tmp_path: Path
) -> None:
    hot = ha.wait_ready()
    job_id, marks = submit(ha, tmp_path, "promote", gate_round=3, gate_sites="site-1,site-2")
    wait_for(lambda: held(marks), 120, "round 3")
    answer = ha.ask(lambda s: s.promote_sp(other(hot)))
    assert answer.hot == other(hot)
    wait_for(lambda: ha.serving(other(hot)) and not ha.serving(hot), 60, "the switch")
    (marks / "gate").write_text("open")
    finish_and_check(ha, job_id, marks, faults=1, dest=tmp_path / "dl")
    assert "stepping down (" in ha.log(hot)


def test_a_promote_by_a_site_certificate_is_refused(ha: HaFederation) -> None:
    from fedra.overseer import OverseerRefused, client_for_kit

    with pytest.raises(OverseerRefused, match=r"403|project_admin"):
        client_for_kit(ha.kits["site-1"]).promote("server1")


def test_restarting_the_overseer_changes_nothing_for_a_running_job(
    ha: HaFederation, tmp_path: Path
) -> None:
    hot = ha.wait_ready()
    ssid = ha.overseer_state().ssid
    job_id, marks = submit(ha, tmp_path, "overseer", gate_round=3, gate_sites="site-1,site-2")
    wait_for(lambda: held(marks), 120, "round 3")
    before = ha.log(hot).count("stepping down")
    ha.kill(OVERSEER, signal.SIGTERM)
    ha.start(OVERSEER)
    wait_for(lambda: ha.hot() == hot, 30, "the overseer to be back")
    assert ha.overseer_state().ssid == ssid
    (marks / "gate").write_text("open")
    finish_and_check(ha, job_id, marks, faults=0, dest=tmp_path / "dl")
    assert ha.log(hot).count("stepping down") == before


def test_a_hot_server_cut_off_from_the_overseer_steps_down(
    ha: HaFederation, tmp_path: Path
) -> None:
    """The sites still reach the old hot server; it must stop by itself, not wait for them."""
    hot = ha.wait_ready()
    job_id, marks = submit(ha, tmp_path, "partition")
    wait_for(lambda: rounds_done(ha, job_id) >= 2, 120, "round 2")
    ha.proxies[hot].cut()
    try:
        wait_for(lambda: "the lease" in ha.log(hot) and not ha.serving(hot), 60, "step-down")
        wait_for(lambda: ha.hot() == other(hot) and ha.serving(other(hot)), 60, "promotion")
        finish_and_check(ha, job_id, marks, faults=1, dest=tmp_path / "dl")
    finally:
        ha.proxies[hot].heal()
    assert ha.procs[hot].poll() is None  # stepped down, still running as a standby


def test_both_servers_down_then_up_resumes_the_job(ha: HaFederation, tmp_path: Path) -> None:
    ha.wait_ready()
    job_id, marks = submit(ha, tmp_path, "both")
    wait_for(lambda: rounds_done(ha, job_id) >= 3, 120, "round 3")
    for server in SERVERS:
        ha.kill(server)
    for server in SERVERS:
        ha.start(server)
    finish_and_check(ha, job_id, marks, faults=1, dest=tmp_path / "dl")
