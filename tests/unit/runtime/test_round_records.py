"""What a job records of its rounds (``run_info.rounds``, shown by ``show_stats``)."""

from __future__ import annotations

from fedra.protocol import Round
from fedra.runtime.server_jobs import _rounds_with


def test_a_round_records_its_metrics_time_and_the_sites_it_counted() -> None:
    rounds = _rounds_with({}, Round("FedAvg", 1, {"mean": 0.5}, 1.25, ("site-2", "site-1")))
    assert rounds == [
        {
            "workflow": "FedAvg",
            "round": 1,
            "metrics": {"mean": 0.5},
            "seconds": 1.25,
            "sites": ["site-2", "site-1"],
        }
    ]


def test_a_resumed_job_keeps_the_rounds_of_its_earlier_start() -> None:
    """A standby that resumes a job (or a restarted server) starts a new job process: the
    rounds recorded before stay, a round run again replaces its first record."""
    info = {"rounds": _rounds_with({}, Round("FedAvg", 1, sites=("a",)))}
    info = {"rounds": _rounds_with(info, Round("FedAvg", 2, sites=("a",)))}
    info = {"rounds": _rounds_with(info, Round("FedAvg", 2, sites=("a", "b")))}  # resumed
    rounds = _rounds_with(info, Round("FedAvg", 3, sites=("b",)))
    assert [(r["round"], r["sites"]) for r in rounds] == [(1, ["a"]), (2, ["a", "b"]), (3, ["b"])]  # type: ignore[index, call-overload]
