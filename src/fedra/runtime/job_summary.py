"""``summary.json`` of a downloaded job: the simulator's run summary, from the server's record.

A POC or production download holds the job's folder and its workspace; ``summary.json`` is
added to it with the keys the simulator writes (``docs/simulator.md``), so that a script reads
one file whichever way the job ran: ``job``, ``job_id``, ``status``, ``sites``, ``seconds``,
``rounds``, ``final_metrics`` (those of the last round recorded: FedAvg's final validation
when it ran), ``error``, ``failed_site``, ``failed_task``, ``site_traceback``, ``history``,
``models`` (the ``.npz`` files in ``models/``) and ``tensorboard`` (the command, relative to
the downloaded folder).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TypedDict

from fedra.core.jsonfile import JsonObject, JsonValue
from fedra.jobstore import JobRecord

#: The name of the summary in a download.
SUMMARY_FILE = "summary.json"


class StatusEntry(TypedDict):
    """One entry of ``history``."""

    status: str
    at: float
    reason: str


class JobSummary(TypedDict):
    """``summary.json`` of a downloaded job (the keys of the simulator's)."""

    job: str
    job_id: str
    status: str
    sites: list[JsonValue]
    seconds: float
    rounds: list[JsonValue]
    final_metrics: JsonValue
    error: str | None
    failed_site: str | None
    failed_task: str | None
    site_traceback: str | None
    history: list[StatusEntry]
    models: list[str]
    tensorboard: str


def job_summary(record: JobRecord, workspace: Path) -> JobSummary:
    """The summary of the job ``record``, whose workspace is ``workspace``."""
    rounds = record.run_info.get("rounds")
    rounds = list(rounds) if isinstance(rounds, list) else []
    sites = record.run_info.get("sites")
    failure: JsonObject = record.failure or {}
    started = next((c.at for c in record.history if c.status.value == "RUNNING"), None)
    end = record.history[-1].at if record.status.is_final else time.time()
    last = rounds[-1] if rounds and isinstance(rounds[-1], dict) else {}
    models = workspace / "models"
    return {
        "job": record.name,
        "job_id": record.job_id,
        "status": record.status.value,
        "sites": list(sites) if isinstance(sites, list) else [],
        "seconds": round(end - started, 3) if started is not None else 0.0,
        "rounds": rounds,
        "final_metrics": last.get("metrics", {}),
        "error": _text(failure.get("reason")) if record.failure else _error(record),
        "failed_site": _text(failure.get("site")),
        "failed_task": _text(failure.get("task")),
        "site_traceback": _text(failure.get("traceback")),
        "history": [
            {"status": c.status.value, "at": c.at, "reason": c.reason} for c in record.history
        ],
        "models": sorted(p.name for p in models.glob("*.npz")) if models.is_dir() else [],
        "tensorboard": "tensorboard --logdir tb_events",
    }


def summary_bytes(record: JobRecord, workspace: Path) -> bytes:
    """:func:`job_summary` as the bytes of ``summary.json``."""
    return (json.dumps(job_summary(record, workspace), indent=2) + "\n").encode()


def _error(record: JobRecord) -> str | None:
    """Why a job that did not complete ended (its last status change); None otherwise."""
    if record.status.value == "FINISHED:COMPLETED" or not record.status.is_final:
        return None
    return record.history[-1].reason or None


def _text(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None
