"""The server parent's scheduling decisions (:mod:`fedra.runtime.server_schedule`), with a
memory store, sites that answer reserve/free from a script, and the launch recorded."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import fedra.runtime.server_schedule as server_schedule
from fedra.core import FedraError, JobStatus, JsonObject
from fedra.runtime.server_parent import ServerParent
from fedra.runtime.server_schedule import RESERVATION_TTL_S, schedule_once
from fedra.scheduler import SiteResources
from tests.unit.runtime.server_fakes import shell, submit

SITES = ("site-a", "site-b", "site-c")
REPORT: JsonObject = {"total": {"num_cpus": 8}, "free": {"num_cpus": 6}}


class Sites:
    """What the sites answer: ``refuse`` maps (site, cmd) to the error it raises."""

    def __init__(self, sp: ServerParent) -> None:
        self.sp = sp
        self.asked: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse: dict[tuple[str, str], str] = {}
        self.on_reserve: Any = None

    def __call__(self, site: str, cmd: str, args: dict[str, Any], timeout: float = 0) -> Any:
        self.asked.append((site, cmd, args))
        why = self.refuse.get((site, cmd))
        if why is not None:
            raise FedraError(why)
        if cmd == "reserve" and self.on_reserve is not None:
            self.on_reserve(site)
        return REPORT

    def calls(self, cmd: str) -> list[str]:
        return [site for site, c, _ in self.asked if c == cmd]


@pytest.fixture
def sp(tmp_path: Path) -> ServerParent:
    server = shell(tmp_path, SITES)
    server.kit = SimpleNamespace(name="server1", max_jobs=2, job_aging_s=300.0)  # type: ignore[assignment]
    for handle in server.sites.values():
        handle.free = SiteResources(num_cpus=4)
    return server


@pytest.fixture
def sites(sp: ServerParent) -> Sites:
    answers = Sites(sp)
    sp.ask = answers  # type: ignore[method-assign]
    return answers


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], bool]]:
    calls: list[tuple[str, list[str], bool]] = []

    def launch(server: ServerParent, job_id: str, sites: list[str], resume: bool) -> None:
        calls.append((job_id, sites, resume))

    monkeypatch.setattr(server_schedule, "launch", launch)
    return calls


def meta(**fields: Any) -> JsonObject:
    return {"name": "hello", "deploy_map": {"app": ["@ALL"]}, **fields}


# -- a queued job ---------------------------------------------------------------------------
def test_a_job_that_fits_is_reserved_dispatched_and_launched(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    submit(sp, "j1", meta(resource_spec={"site-a": {"num_cpus": 2}}))
    sp.waiting["j1"] = "waiting: an older reason"
    schedule_once(sp)
    assert sites.calls("reserve") == list(SITES) and sites.calls("free") == []
    args = {site: a for site, cmd, a in sites.asked}
    assert args["site-a"] == {"job_id": "j1", "spec": {"num_cpus": 2}, "ttl": RESERVATION_TTL_S}
    assert args["site-b"]["spec"] == {}
    assert launched == [("j1", list(SITES), False)]
    record = sp.store.get("j1")
    assert record.status == JobStatus.DISPATCHED
    assert record.history[-1].reason == "dispatched to site-a, site-b, site-c"
    assert "j1" not in sp.waiting
    assert sp.sites["site-a"].free == SiteResources(num_cpus=6)  # from the reserve answer
    assert sp.sites["site-a"].total == SiteResources(num_cpus=8)


def test_an_optional_site_that_refuses_is_left_out(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    submit(sp, "j1", meta(min_clients=2))
    sites.refuse[("site-b", "reserve")] = "site-b: busy"
    schedule_once(sp)
    assert launched == [("j1", ["site-a", "site-c"], False)]
    assert sites.calls("free") == []
    assert sp.store.get("j1").history[-1].reason == "dispatched to site-a, site-c"


def test_a_mandatory_site_that_refuses_releases_every_reservation(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    submit(sp, "j1", meta(mandatory_clients=["site-a", "site-c"]))
    sites.refuse[("site-c", "reserve")] = "site-c: no GPU free"
    schedule_once(sp)
    assert sites.calls("reserve") == ["site-a", "site-c"]  # mandatory first; no use asking b
    assert sites.calls("free") == ["site-a"]
    assert launched == [] and sp.store.get("j1").status == JobStatus.SUBMITTED
    assert sp.waiting["j1"] == "waiting: site-c: no GPU free"


def test_too_few_reservations_release_the_ones_made(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    submit(sp, "j1", meta(min_clients=3))
    sites.refuse[("site-a", "reserve")] = "site-a: busy"
    sites.refuse[("site-c", "reserve")] = "site-c: busy"
    schedule_once(sp)
    assert sites.calls("free") == ["site-b"]
    assert sp.waiting["j1"] == "waiting: site-a: busy; site-c: busy"
    assert launched == [] and sp.store.get("j1").status == JobStatus.SUBMITTED


def test_a_release_that_fails_does_not_stop_the_others(
    sp: ServerParent, sites: Sites, launched: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    submit(sp, "j1", meta(min_clients=3))
    sites.refuse[("site-c", "reserve")] = "site-c: busy"
    sites.refuse[("site-a", "free")] = "site-a is not connected"
    caplog.set_level(logging.INFO, "fedra.server")
    schedule_once(sp)
    assert sites.calls("free") == ["site-a", "site-b"]
    assert "could not release job j1 on site-a: site-a is not connected" in caplog.text
    assert launched == []


def test_a_job_aborted_while_its_sites_reserved_is_never_started(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    submit(sp, "j1")

    def abort_on_last(site: str) -> None:
        if site == "site-c":  # an admin aborts it meanwhile
            sp.store.transition("j1", JobStatus.FINISHED_ABORTED, "aborted by an admin")

    sites.on_reserve = abort_on_last
    schedule_once(sp)
    assert launched == []
    assert sites.calls("free") == list(SITES)  # every reservation given back
    assert sp.store.get("j1").status == JobStatus.FINISHED_ABORTED
    assert "j1" not in sp.waiting


def test_a_job_that_does_not_fit_waits_with_the_policys_reason(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    submit(sp, "j1", meta(resource_spec={"site-a": {"num_gpus": 1}}, mandatory_clients=["site-a"]))
    schedule_once(sp)
    assert sites.asked == [] and launched == []
    assert sp.waiting["j1"].startswith("waiting: ") and "site-a" in sp.waiting["j1"]


def test_no_more_than_max_jobs_run_at_once(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    sp.running["r1"] = SimpleNamespace()  # type: ignore[assignment]
    running_in_store(sp, "r2", mandatory_clients=["site-x"])  # waits to resume: it counts
    submit(sp, "j1")
    schedule_once(sp)
    assert launched == [] and sp.waiting["j1"] == "waiting: 2 jobs running (the maximum)"
    del sp.running["r1"]
    schedule_once(sp)
    assert launched == [("j1", list(SITES), False)]


def test_sites_that_have_not_said_what_is_free_are_not_used(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    sp.sites["site-b"].free = None
    submit(sp, "j1")
    schedule_once(sp)
    assert sites.calls("reserve") == ["site-a", "site-c"]
    assert launched == [("j1", ["site-a", "site-c"], False)]


def test_a_job_no_longer_queued_stops_waiting(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    sp.waiting["gone"] = "waiting: for ever"
    submit(sp, "j1", meta(mandatory_clients=["site-x"]))
    schedule_once(sp)
    assert "gone" not in sp.waiting and "j1" in sp.waiting


def test_a_cold_server_schedules_nothing(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    sp.hot = False
    submit(sp, "j1")
    sp.to_resume.add("j1")
    schedule_once(sp)
    assert sites.asked == [] and launched == [] and sp.to_resume == {"j1"}


# -- resuming -------------------------------------------------------------------------------
def running_in_store(sp: ServerParent, job_id: str, **fields: Any) -> None:
    sp.store.create(meta(**fields), b"zip", "admin", job_id)
    sp.store.transition(job_id, JobStatus.DISPATCHED, "x")
    sp.store.transition(job_id, JobStatus.RUNNING, "x")
    sp.to_resume.add(job_id)


def test_a_job_resumes_on_the_connected_sites_that_run_an_app_of_it(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    running_in_store(sp, "j1", deploy_map={"app": ["server", "site-a", "site-c", "site-z"]})
    sp.waiting["j1"] = "waiting to resume: old"
    schedule_once(sp)
    assert launched == [("j1", ["site-a", "site-c"], True)]
    assert sites.asked == []  # nothing is reserved again for a resumed job
    assert not sp.to_resume and "j1" not in sp.waiting


def test_a_job_waits_to_resume_for_its_mandatory_sites(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    running_in_store(sp, "j1", mandatory_clients=["site-a", "site-x"])
    schedule_once(sp)
    assert launched == [] and sp.to_resume == {"j1"}
    assert sp.waiting["j1"] == "waiting to resume: mandatory sites ['site-x'] not connected"


def test_a_job_waits_to_resume_for_min_clients(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    running_in_store(sp, "j1", min_clients=4)
    schedule_once(sp)
    assert launched == [] and sp.to_resume == {"j1"}
    assert sp.waiting["j1"] == "waiting to resume: 3 of min_clients=4 connected"


def test_a_job_already_running_here_is_not_resumed_twice(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    running_in_store(sp, "j1")
    sp.running["j1"] = SimpleNamespace()  # type: ignore[assignment]
    schedule_once(sp)
    assert launched == [] and not sp.to_resume


def test_a_job_that_ended_meanwhile_is_not_resumed(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    running_in_store(sp, "j1")
    sp.store.transition("j1", JobStatus.FINISHED_ABORTED, "aborted by an admin")
    schedule_once(sp)
    assert launched == [] and not sp.to_resume


def test_jobs_resume_in_order_of_their_ids(
    sp: ServerParent, sites: Sites, launched: list[Any]
) -> None:
    for job_id in ("jc", "ja", "jb"):
        running_in_store(sp, job_id)
    schedule_once(sp)
    assert [call[0] for call in launched] == ["ja", "jb", "jc"]
