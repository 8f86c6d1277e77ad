"""What a job records of its rounds (``run_info.rounds``, shown by ``show_stats``): the sites
each round counted, also across a resume."""

from __future__ import annotations

from pathlib import Path

from fedra.protocol import Round
from fedra.runtime.server_records import RunningJob
from tests.unit.runtime.server_fakes import FakeChannel, FakeProc


def _job() -> RunningJob:
    return RunningJob("j1", FakeProc(), FakeChannel(), ["a", "b"], Path("log.txt"))  # type: ignore[arg-type]


def test_a_round_records_its_metrics_time_and_the_sites_it_counted() -> None:
    rounds = _job().record_round(
        Round("FedAvg", 1, {"mean": 0.5}, 1.25, index=0, sites=("site-2", "site-1"))
    )
    assert rounds == [
        {
            "workflow": "FedAvg",
            "round": 1,
            "metrics": {"mean": 0.5},
            "seconds": 1.25,
            "sites": ["site-2", "site-1"],
        }
    ]


def test_a_round_run_again_after_a_resume_records_the_sites_of_its_new_run() -> None:
    job = _job()
    job.record_round(Round("FedAvg", 1, index=0, sites=("a",)))
    job.record_round(Round("FedAvg", 2, index=1, sites=("a",)))
    job.record_round(Round("FedAvg", 2, index=1, sites=("a", "b")))  # resumed: run again
    rounds = job.record_round(Round("FedAvg", 3, index=2, sites=("b",)))
    assert [(r["round"], r["sites"]) for r in rounds] == [(1, ["a"]), (2, ["a", "b"]), (3, ["b"])]
