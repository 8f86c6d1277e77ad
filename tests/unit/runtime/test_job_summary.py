"""summary.json of a downloaded job: the simulator's keys, from the server's record."""

from __future__ import annotations

import json
from pathlib import Path

from fedra.core import JobStatus, StatusChange, parse_meta
from fedra.jobstore import JobRecord
from fedra.runtime.job_summary import job_summary, summary_bytes
from fedra.simulator.runner import SummaryJson

#: The keys of the simulator's summary.json: a script reads either the same way.
SIMULATOR_KEYS = set(SummaryJson.__annotations__)


def _record(status: JobStatus, failure: dict[str, object] | None = None) -> JobRecord:
    history = (
        StatusChange(JobStatus.SUBMITTED, 100.0, "submitted"),
        StatusChange(JobStatus.RUNNING, 102.0, "running"),
        StatusChange(status, 110.5, "all workflows finished" if failure is None else "failed"),
    )
    rounds = [
        {"workflow": "FedAvg", "round": 1, "metrics": {"acc": 0.5}, "seconds": 1.0},
        {"workflow": "FedAvg (final validation)", "round": 1, "metrics": {"acc": 0.7}},
    ]
    return JobRecord(
        job_id="j1",
        name="hello",
        submitter="admin@x",
        submitted_at=100.0,
        status=status,
        history=history,
        meta=parse_meta({"name": "hello", "deploy_map": {"app": ["@ALL"]}}),
        failure=failure,  # type: ignore[arg-type]
        run_info={"rounds": rounds, "sites": ["site-1", "site-2"]},
    )


def test_the_summary_of_a_completed_job(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    for name in ("final.npz", "round-001.npz", "notes.txt"):
        (tmp_path / "models" / name).write_bytes(b"")
    summary = job_summary(_record(JobStatus.FINISHED_COMPLETED), tmp_path)
    assert set(summary) == SIMULATOR_KEYS
    assert summary["status"] == "FINISHED:COMPLETED"
    assert summary["sites"] == ["site-1", "site-2"]
    assert summary["seconds"] == 8.5
    assert summary["final_metrics"] == {"acc": 0.7}
    assert summary["error"] is None and summary["failed_site"] is None
    assert summary["models"] == ["final.npz", "round-001.npz"]
    assert [h["status"] for h in summary["history"]] == [
        "SUBMITTED",
        "RUNNING",
        "FINISHED:COMPLETED",
    ]
    assert json.loads(summary_bytes(_record(JobStatus.FINISHED_COMPLETED), tmp_path)) == summary


def test_the_summary_of_a_failed_job_names_the_site(tmp_path: Path) -> None:
    failure = {"site": "site-2", "task": "train", "traceback": "Traceback …", "reason": "boom"}
    summary = job_summary(_record(JobStatus.FINISHED_EXECUTION_EXCEPTION, failure), tmp_path)
    assert summary["error"] == "boom"
    assert (summary["failed_site"], summary["failed_task"]) == ("site-2", "train")
    assert summary["site_traceback"] == "Traceback …"
    assert summary["models"] == []
