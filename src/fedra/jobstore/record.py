"""The job record, and the helpers every store shares: ids, JSON values, merging.

A :class:`JobRecord` is a snapshot: stores hand out fresh copies, so changing one never changes
the store. ``meta`` is the parsed :class:`fedra.core.JobMeta` (validated once, at submission);
``failure`` and ``run_info`` are free JSON objects.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedra.core import (
    FedraError,
    JobMeta,
    JobStatus,
    JsonCompatible,
    JsonObject,
    JsonValue,
    StatusChange,
    parse_meta,
)
from fedra.jobstore.errors import StoreCorrupt

#: The keys a failure record usually carries (others are kept too).
FAILURE_KEYS = ("site", "task", "traceback", "reason")

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class JobRecord:
    """Everything the store knows about one job."""

    job_id: str
    name: str
    submitter: str
    submitted_at: float
    status: JobStatus
    history: tuple[StatusChange, ...]
    meta: JobMeta
    failure: JsonObject | None = None
    run_info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> JsonObject:
        """The record as JSON-compatible values (for ``--format json`` listings)."""
        return {
            "job_id": self.job_id,
            "name": self.name,
            "submitter": self.submitter,
            "submitted_at": self.submitted_at,
            "status": self.status.value,
            "history": [
                {"status": c.status.value, "at": c.at, "reason": c.reason} for c in self.history
            ],
            "meta": meta_as_dict(self.meta),
            "failure": copy_json(self.failure) if self.failure is not None else None,
            "run_info": copy_json(self.run_info),
        }


def meta_as_dict(meta: JobMeta) -> JsonObject:
    """A :class:`JobMeta` as the JSON object meta.json would hold."""
    return {
        "name": meta.name,
        "deploy_map": {app: list(sites) for app, sites in meta.deploy_map.items()},
        "min_clients": meta.min_clients,
        "mandatory_clients": list(meta.mandatory_clients),
        "resource_spec": {site: dict(spec) for site, spec in meta.resource_spec.items()},
        "priority": meta.priority,
    }


def new_job_id() -> str:
    """A fresh job id (a uuid4 string)."""
    return str(uuid.uuid4())


def is_job_id(job_id: object) -> bool:
    """Whether ``job_id`` is a safe job id: one path component of letters, digits, ``_.-``."""
    return isinstance(job_id, str) and bool(_JOB_ID.match(job_id))


def check_job_id(job_id: str) -> str:
    """Return ``job_id``, or raise ValueError if it is not a safe job id."""
    if not is_job_id(job_id):
        raise ValueError(
            f"invalid job id {job_id!r}: expected 1-128 letters, digits, '_', '.' or '-'"
        )
    return job_id


def json_text(value: Mapping[str, JsonCompatible], what: str) -> str:
    """``value`` as JSON text; a ValueError naming ``what`` if it is not a JSON object."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: not JSON-serialisable: {exc}") from exc


def copy_json(value: Mapping[str, JsonCompatible], what: str = "value") -> JsonObject:
    """A deep copy of a JSON object; a ValueError naming ``what`` if it is not one."""
    copied: JsonObject = json.loads(json_text(value, what))
    return copied


def merge(base: Mapping[str, JsonValue], update: Mapping[str, JsonValue]) -> JsonObject:
    """``base`` updated with ``update``; nested objects are merged key by key, others replaced."""
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge(old, value)
        else:
            merged[key] = value
    return merged


def decode_record(row: Any, changes: Iterable[Any], where: Path | str) -> JobRecord:
    """A record from a database row and its transition rows (both indexable by column name).

    ``meta``, ``failure`` and ``run_info`` are JSON text; anything unreadable is
    :class:`~fedra.jobstore.StoreCorrupt` naming ``where`` (the database) and the job.
    """
    try:
        failure = None if row["failure"] is None else json.loads(row["failure"])
        return JobRecord(
            job_id=row["job_id"],
            name=row["name"],
            submitter=row["submitter"],
            submitted_at=row["submitted_at"],
            status=JobStatus(row["status"]),
            history=tuple(
                StatusChange(JobStatus(c["status"]), c["at"], c["reason"]) for c in changes
            ),
            meta=parse_meta(json.loads(row["meta"])),
            failure=failure,
            run_info=json.loads(row["run_info"]),
        )
    except (ValueError, TypeError, LookupError, FedraError) as exc:
        raise StoreCorrupt(where, f"job {row['job_id']!r} is unreadable: {exc}") from exc
