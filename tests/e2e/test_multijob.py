"""Several jobs at once in one provisioned federation, admitted by the sites' resources.

Sites declare GPUs in ``local/resources.json`` (no real GPU is needed: the scheduler only
counts them, and each job's processes see the indices it was given in
``CUDA_VISIBLE_DEVICES``). Two leads of different organisations submit jobs; the server runs
as many as fit, queues the rest with a reason, and the books balance at the end.

Every process runs in a session of its own and is ended by process group when the module ends,
also when a test fails. Waits poll a condition against a deadline.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedra.admin import AdminError, Session, SiteCapacity
from tests.e2e.conftest import read, wait_for
from tests.e2e.jobs import arithmetic_job, expected_weights
from tests.e2e.provisioned import (
    SERVER,
    SITES,
    ProvisionedFederation,
    free_ports,
    provision_project,
)

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

LEAD_A = "lead@hospital-a.org"
LEAD_B = "lead@hospital-b.org"
GPUS = {"site-1": 2, "site-2": 2}
PARTICIPANTS = f"""\
  - {{name: site-1, type: client, org: hospital-a, enable_byoc: true}}
  - {{name: site-2, type: client, org: hospital-b, enable_byoc: true}}
  - {{name: {LEAD_A}, type: admin, org: hospital-a, role: lead}}
  - {{name: {LEAD_B}, type: admin, org: hospital-b, role: lead}}"""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """server1 (at most 4 jobs at once) and two sites with 2 GPUs each, connected."""
    fed_port, admin_port = free_ports()
    root = tmp_path_factory.mktemp("multijob")
    kits = provision_project(root, "multijob", fed_port, admin_port, PARTICIPANTS)
    for site, gpus in GPUS.items():
        resources = {"num_gpus": gpus, "mem_per_gpu": 16, "num_cpus": 8, "memory": 32}
        (kits[site] / "local" / "resources.json").write_text(json.dumps(resources))
    federation = ProvisionedFederation(kits, fed_port, admin_port)
    try:
        federation.start(SERVER)
        wait_for(lambda: "listening" in read(kits[SERVER] / "log.txt"), 60, "server1 to listen")
        for site in SITES:
            federation.start(site)
        federation.wait_sites()
        yield federation
    finally:
        federation.stop_all()


def gpu_job(folder: Path, marks: Path, gpus: int, **options: object) -> Path:
    """The arithmetic job asking ``gpus`` GPUs (16 GiB each) of every site."""
    spec = {site: {"num_gpus": gpus, "mem_per_gpu": 16} for site in SITES} if gpus else None
    return arithmetic_job(folder, marks, resource_spec=spec, **options)  # type: ignore[arg-type]


def final_weights(fed: ProvisionedFederation, admin: str, job_id: str, dest: Path) -> np.ndarray:
    """The final model of a finished job, downloaded."""
    with fed.session(admin) as session:
        folder = session.download_job(job_id, dest)
    with np.load(folder / "models" / "final.npz") as data:
        return np.array(data["w"])


def site_resources(fed: ProvisionedFederation) -> dict[str, SiteCapacity | None]:
    """What the server last heard from each site about its resources."""
    with fed.session(LEAD_A) as session:
        return {s.name: s.resources for s in session.sites_status().sites}


def books_balance(fed: ProvisionedFederation) -> bool:
    """Every site reports all of its resources free again."""
    return all(r is not None and r.free == r.total for r in site_resources(fed).values())


def test_two_jobs_share_the_gpus_and_a_third_waits_with_a_reason(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    fed.wait_sites()
    marks = {name: tmp_path / f"marks-{name}" for name in ("a", "b", "c")}
    # a and b each take 1 of the 2 GPUs of every site and hold in round 1 until their gate
    # opens; c asks 2 GPUs of every site, so it can run only once one of them is done.
    job_a = gpu_job(tmp_path / "job-a", marks["a"], 1, rounds=2, gate_round=1,
                    gate_sites="site-1,site-2")  # fmt: skip
    job_b = gpu_job(tmp_path / "job-b", marks["b"], 1, rounds=2, gate_round=1,
                    gate_sites="site-1,site-2")  # fmt: skip
    job_c = gpu_job(tmp_path / "job-c", marks["c"], 2, rounds=2)
    with fed.session(LEAD_A) as lead_a, fed.session(LEAD_B) as lead_b:
        id_a = lead_a.submit_job(job_a)
        id_b = lead_b.submit_job(job_b)

        def both_held() -> bool:
            for job_id in (id_a, id_b):
                job = lead_a.get_job(job_id)
                assert not job.status.startswith("FINISHED"), job
            return all((marks[j] / f"{s}.waiting").exists() for j in ("a", "b") for s in SITES)

        wait_for(both_held, 120, "jobs a and b to be in round 1 at the same time")
        id_c = lead_b.submit_job(job_c)

        def c_waits_with_reason() -> bool:
            job = lead_b.get_job(id_c)
            return job.status == "SUBMITTED" and "GPUs free" in str(job.waiting)

        wait_for(c_waits_with_reason, 30, "job c to wait with a reason")
        listed = {j.job_id: j for j in lead_b.list_jobs(detailed=True)}
        assert "0 of 2 GPUs free" in str(listed[id_c].waiting), listed[id_c]
        # Each running job sees only its own GPU on each site.
        for site in SITES:
            seen = {read(marks[j] / f"{site}.cuda") for j in ("a", "b")}
            assert seen == {"0", "1"}, (site, seen)

        (marks["a"] / "gate").write_text("open")
        assert lead_a.wait(id_a, timeout=120).status == "FINISHED:COMPLETED"
        # c needs both GPUs: it still waits for b, which holds one of them.
        assert lead_b.get_job(id_c).status == "SUBMITTED"
        (marks["b"] / "gate").write_text("open")
        assert lead_b.wait(id_b, timeout=120).status == "FINISHED:COMPLETED"
        assert lead_b.wait(id_c, timeout=180).status == "FINISHED:COMPLETED"
    for site in SITES:
        assert read(marks["c"] / f"{site}.cuda") == "0,1"
    for name, job_id, admin in (("a", id_a, LEAD_A), ("b", id_b, LEAD_B), ("c", id_c, LEAD_B)):
        weights = final_weights(fed, admin, job_id, tmp_path / f"download-{name}")
        np.testing.assert_allclose(weights, expected_weights(2, 2))
    wait_for(lambda: books_balance(fed), 60, "every site's resources to be free again")


def test_a_spec_no_site_can_hold_is_refused_at_submission(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    fed.wait_sites()
    job = gpu_job(tmp_path / "too-big", tmp_path / "marks", 3)
    with fed.session(LEAD_A) as lead, pytest.raises(AdminError, match=r"never run.*3 GPUs"):
        lead.submit_job(job)
    unknown = arithmetic_job(
        tmp_path / "unknown-key", tmp_path / "marks", resource_spec={"site-1": {"tpus": 1}}
    )
    with fed.session(LEAD_A) as lead, pytest.raises(AdminError, match="unknown resource 'tpus'"):
        lead.submit_job(unknown)


def task_times(marks: Path) -> list[float]:
    """When each task of a job began, on any site."""
    times: list[float] = []
    for file in marks.glob("*.tasks"):
        times += [float(line.split()[0]) for line in read(file).splitlines()]
    return times


def test_twenty_jobs_from_two_users_with_aborts_end_consistently(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    """20 jobs at once; some aborted while queued, some while running (held at a gate)."""
    fed.wait_sites()
    rng = random.Random(7)
    plan: list[dict[str, object]] = []
    for i in range(20):
        kind = "run"
        if i in (2, 9, 15):
            kind = "abort_running"  # held in round 1 until aborted
        elif i in (4, 11, 17, 19):
            kind = "abort_queued"  # aborted right after submission
        options: dict[str, object] = {"rounds": 1}
        if kind == "abort_running":
            options.update(gate_round=1, gate_sites="site-1,site-2")
        marks = tmp_path / f"marks-{i}"
        folder = gpu_job(tmp_path / f"job-{i}", marks, rng.choice([0, 1, 2]), **options)
        plan.append({"i": i, "kind": kind, "folder": folder, "marks": marks,
                     "admin": LEAD_A if i % 2 == 0 else LEAD_B})  # fmt: skip

    with fed.session(LEAD_A) as lead_a, fed.session(LEAD_B) as lead_b:
        sessions = {LEAD_A: lead_a, LEAD_B: lead_b}
        for job in plan:
            session = sessions[str(job["admin"])]
            job["id"] = session.submit_job(Path(str(job["folder"])))
            if job["kind"] == "abort_queued":
                session.abort_job(str(job["id"]))
        for job in plan:
            if job["kind"] != "abort_running":
                continue
            session = sessions[str(job["admin"])]
            job_id, marks = str(job["id"]), Path(str(job["marks"]))

            def held(m: Path = marks, job_id: str = job_id, admin: Session = session) -> bool:
                status = admin.get_job(job_id).status
                assert not status.startswith("FINISHED"), (job_id, status)
                return all((m / f"{s}.waiting").exists() for s in SITES)

            wait_for(held, 240, f"job {job['i']} to be held in round 1")
            assert session.get_job(job_id).status == "RUNNING"
            session.abort_job(job_id)

        finals = {}
        for job in plan:
            session = sessions[str(job["admin"])]
            finals[job["i"]] = session.wait(str(job["id"]), timeout=240)

    for job in plan:
        final = finals[job["i"]]
        marks = Path(str(job["marks"]))
        history = [h.status for h in final.history or []]
        if job["kind"] == "run":
            assert final.status == "FINISHED:COMPLETED", (job["i"], final)
            assert final.submitter == job["admin"]
            continue
        assert final.status == "FINISHED:ABORTED", (job["i"], final)
        aborted_at = next(h.at for h in final.history or [] if h.status == "FINISHED:ABORTED")
        started = task_times(marks)
        if "RUNNING" not in history:  # aborted before it was started: it never ran at all
            assert started == [], (job["i"], history, started)
        # Nothing of an aborted job began after its abort (a task already in flight may
        # reach the script a moment later: allow the delivery time).
        assert all(t <= aborted_at + 2.0 for t in started), (job["i"], aborted_at, started)
        if job["kind"] == "abort_running":
            assert "RUNNING" in history
    wait_for(lambda: books_balance(fed), 60, "every site's resources to be free again")
    with fed.session(LEAD_A) as lead:
        assert lead.server_status().jobs == []


def test_an_abort_of_a_waiting_job_is_never_undone(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    """A job that waits for resources and is aborted stays aborted when the GPUs free up."""
    fed.wait_sites()
    holder_marks = tmp_path / "marks-holder"
    holder = gpu_job(tmp_path / "holder", holder_marks, 2, rounds=1, gate_round=1,
                     gate_sites="site-1,site-2")  # fmt: skip
    waiter = gpu_job(tmp_path / "waiter", tmp_path / "marks-waiter", 1, rounds=1)
    with fed.session(LEAD_A) as lead:
        holder_id = lead.submit_job(holder)
        wait_for(
            lambda: all((holder_marks / f"{s}.waiting").exists() for s in SITES),
            120,
            "the holder to run",
        )
        waiter_id = lead.submit_job(waiter)
        wait_for(lambda: lead.get_job(waiter_id).waiting is not None, 30, "waiter waits")
        assert lead.abort_job(waiter_id).status == "FINISHED:ABORTED"
        (holder_marks / "gate").write_text("open")
        assert lead.wait(holder_id, timeout=120).status == "FINISHED:COMPLETED"
        wait_for(lambda: books_balance(fed), 60, "resources to be free again")
        final = lead.get_job(waiter_id)
    assert final.status == "FINISHED:ABORTED"
    assert [h.status for h in final.history or []] == ["SUBMITTED", "FINISHED:ABORTED"]
    assert task_times(tmp_path / "marks-waiter") == []


def test_abort_of_an_unknown_job_is_a_clear_error(fed: ProvisionedFederation) -> None:
    with fed.session(LEAD_A) as lead, pytest.raises(AdminError, match="no job"):
        lead.abort_job("not-a-job")
