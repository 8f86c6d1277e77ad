"""The server parent's record of a job's rounds (``run_info["rounds"]``, what ``get_job`` and
``fedra job stats`` show): a resumed job adds to it, and rounds run again replace theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedra.core import JobStatus, JsonObject
from fedra.protocol import Round, encode
from fedra.runtime import server_jobs
from fedra.runtime.server_records import RunningJob
from tests.unit.runtime.server_fakes import FakeChannel, FakeProc, shell, submit

SITES = ["site-a", "site-b"]


def _job() -> RunningJob:
    return RunningJob("j1", FakeProc(), FakeChannel(), SITES, Path("log.txt"))  # type: ignore[arg-type]


def _listed(rounds: list[JsonObject]) -> list[tuple[object, object]]:
    return [(r["workflow"], r["round"]) for r in rounds]


def test_rounds_are_appended_in_order() -> None:
    job = _job()
    job.record_round(Round("FedAvg", 1, {"accuracy": 0.5}, 1.0, index=0))
    stored = job.record_round(Round("FedAvg", 2, {"accuracy": 0.6}, 1.0, index=1))
    assert _listed(stored) == [("FedAvg", 1), ("FedAvg", 2)]
    assert stored[1] == {"workflow": "FedAvg", "round": 2, "metrics": {"accuracy": 0.6},
                         "seconds": 1.0, "sites": []}  # fmt: skip


def test_a_round_run_again_replaces_its_earlier_record_and_those_after_it() -> None:
    job = _job()
    for n in (1, 2, 3):
        job.record_round(Round("FedAvg", n, {"accuracy": n / 10}, index=n - 1))
    job.record_round(Round("FedAvg (final validation)", 3, index=3))
    # The process died after recording round 3 but before its snapshot: resumed from the
    # snapshot of round 2, it runs round 3 again, which takes round 3's place.
    stored = job.record_round(Round("FedAvg", 3, {"accuracy": 0.35}, index=2))
    assert _listed(stored) == [("FedAvg", 1), ("FedAvg", 2), ("FedAvg", 3)]
    assert stored[2]["metrics"] == {"accuracy": 0.35}


def test_a_round_without_a_place_or_past_the_end_is_appended() -> None:
    job = _job()
    job.record_round(Round("FedAvg", 1))
    job.record_round(Round("FedAvg", 2, index=7))
    assert _listed(job.rounds) == [("FedAvg", 1), ("FedAvg", 2)]


def test_a_resumed_job_adds_to_the_stored_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = shell(tmp_path)
    sp.ca_pem, sp.spool = b"", None  # type: ignore[assignment]  # what the fake start ignores
    submit(sp, "j1")
    sp.store.transition("j1", JobStatus.DISPATCHED, "test")
    sp.store.transition("j1", JobStatus.RUNNING, "test")
    before = [{"workflow": "FedAvg", "round": n, "metrics": {}, "seconds": 1.0} for n in (1, 2, 3)]
    sp.store.update_run_info("j1", {"rounds": before})  # rounds 1-3, 3 not in the snapshot

    def start(*args: object) -> tuple[object, FakeChannel, Path]:
        return FakeProc(), FakeChannel(), tmp_path / "server_job.log"

    monkeypatch.setattr(server_jobs, "start_server_job", start)
    monkeypatch.setattr(server_jobs, "serve_job", lambda server, job: None)
    server_jobs.launch(sp, "j1", SITES, resume=True)
    job = sp.running["j1"]
    assert _listed(job.rounds) == [("FedAvg", 1), ("FedAvg", 2), ("FedAvg", 3)]

    for n in (3, 4):  # round 3 run again (the snapshot was of round 2), then round 4
        assert server_jobs._from_job(sp, job, encode(Round("FedAvg", n, index=n - 1))) is None
    stored = sp.store.get("j1").run_info["rounds"]
    assert _listed(stored) == [("FedAvg", n) for n in (1, 2, 3, 4)]
