"""The header fields of each message kind a reader acts on, parsed and typed in one place.

Headers come from another process (a site, the server, a job process) and may be anything a
peer chose to send. Each reader turns them into one of these frozen dataclasses with
``from_headers`` before it acts; a missing field or a value of the wrong type raises
:class:`BadMessage`, which the reader logs (naming the peer) before it goes on with the next
message. The kinds and their fields are listed in :mod:`fedra.runtime.protocol`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedra.core import FedraError

#: Longest id, name, key or state accepted in a header (characters).
MAX_TEXT = 1024
#: Longest free text (an error, a detail, a traceback) accepted in a header (characters).
MAX_DETAIL = 1 << 20
#: Most items in a list of ids or names (the sites of a job, the jobs of a site).
MAX_ITEMS = 10_000

Headers = Mapping[str, Any]


class BadMessage(FedraError):
    """A message whose headers lack a field or hold a value of the wrong type."""


def text(h: Headers, key: str, *, limit: int = MAX_TEXT) -> str:
    """``h[key]``: a string of at most ``limit`` characters."""
    if key not in h:
        raise BadMessage(f"no '{key}'")
    value = h[key]
    if not isinstance(value, str):
        raise BadMessage(f"'{key}' must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise BadMessage(f"'{key}' is {len(value)} characters long, at most {limit} allowed")
    return value


#: A job id as the server makes them (a UUID): also a folder name on the sites.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def job_id(h: Headers, key: str = "job_id") -> str:
    """``h[key]``: a job id (letters, digits, ``.``, ``_``, ``-``; at most 128; no leading
    dot), safe as a folder name."""
    value = text(h, key)
    if not _JOB_ID.fullmatch(value):
        raise BadMessage(f"'{key}' is not a job id: {value[:64]!r}")
    return value


def optional_text(h: Headers, key: str, *, limit: int = MAX_TEXT) -> str | None:
    """``h[key]`` when present and not null (then a string), else None."""
    return None if h.get(key) is None else text(h, key, limit=limit)


def number(h: Headers, key: str) -> float:
    """``h[key]``: a finite int or float (a bool is not a number)."""
    value = h.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadMessage(f"'{key}' must be a number, got {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:
        raise BadMessage(f"'{key}' is out of range") from None
    if not math.isfinite(result):
        raise BadMessage(f"'{key}' must be finite")
    return result


def optional_int(h: Headers, key: str) -> int | None:
    """``h[key]`` when present and not null (then an int, not a bool), else None."""
    value = h.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadMessage(f"'{key}' must be an integer, got {type(value).__name__}")
    return value


def text_list(h: Headers, key: str, *, required: bool = True) -> list[str]:
    """``h[key]``: a list of at most :data:`MAX_ITEMS` short strings (``[]`` when absent
    and not ``required``)."""
    if key not in h and not required:
        return []
    value = h.get(key)
    if not isinstance(value, list):
        raise BadMessage(f"'{key}' must be a list, got {type(value).__name__}")
    if len(value) > MAX_ITEMS:
        raise BadMessage(f"'{key}' has {len(value)} items, at most {MAX_ITEMS} allowed")
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_TEXT:
            raise BadMessage(f"'{key}' must list strings of at most {MAX_TEXT} characters")
    return list(value)


# -- site -> server (and site job -> site parent) ----------------------------------------
@dataclass(frozen=True)
class ResultHeaders:
    """A RESULT: the task it answers; ``error`` instead of a model when the site failed it;
    ``grant``: the upload grant it was sent under (big results)."""

    job_id: str
    task_id: str
    task_name: str
    error: str | None
    grant: str | None
    site: str

    @classmethod
    def from_headers(cls, h: Headers) -> ResultHeaders:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(
            job_id=job_id(h) if "job_id" in h else "",
            task_id=text(h, "task_id"),
            task_name=text(h, "task_name"),
            error=optional_text(h, "error", limit=MAX_DETAIL),
            grant=optional_text(h, "grant"),
            site=text(h, "site") if "site" in h else "",
        )


@dataclass(frozen=True)
class LogHeaders:
    """A LOG: one metric value a site's training code reported."""

    job_id: str
    site: str
    key: str
    value: float
    step: int | None

    @classmethod
    def from_headers(cls, h: Headers) -> LogHeaders:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(
            job_id=job_id(h) if "job_id" in h else "",
            site=text(h, "site") if "site" in h else "",
            key=text(h, "key"),
            value=number(h, "value"),
            step=optional_int(h, "step"),
        )


@dataclass(frozen=True)
class MayUpload:
    """A MAY_UPLOAD: the site has a big result of ``job_id`` ready (grant id ``id``)."""

    id: str
    job_id: str

    @classmethod
    def from_headers(cls, h: Headers) -> MayUpload:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(id=text(h, "id"), job_id=job_id(h))


#: The states a site reports for a job.
JOB_STATES = frozenset({"started", "failed", "ended"})


@dataclass(frozen=True)
class JobState:
    """A JOB_STATE: a site started a job's process, refused or failed it, or ended it."""

    job_id: str
    state: str
    detail: str

    @classmethod
    def from_headers(cls, h: Headers) -> JobState:
        """Parse; BadMessage when a field is missing, of the wrong type, or an unknown state."""
        state = text(h, "state")
        if state not in JOB_STATES:
            raise BadMessage(f"'state' must be one of {sorted(JOB_STATES)}, got {state[:40]!r}")
        return cls(
            job_id=job_id(h),
            state=state,
            detail=optional_text(h, "detail", limit=MAX_DETAIL) or "",
        )


# -- server parent -> server job ---------------------------------------------------------
@dataclass(frozen=True)
class SiteFailed:
    """The job process of ``site`` failed (or the site refused the job)."""

    site: str
    detail: str

    @classmethod
    def from_headers(cls, h: Headers) -> SiteFailed:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(site=text(h, "site"), detail=optional_text(h, "detail", limit=MAX_DETAIL) or "")


@dataclass(frozen=True)
class Lost:
    """One task (``task_id``) or every task of a site (``site``) will not be answered."""

    task_id: str | None
    site: str | None

    @classmethod
    def from_headers(cls, h: Headers) -> Lost:
        """Parse; BadMessage when neither field is a string."""
        task_id, site = optional_text(h, "task_id"), optional_text(h, "site")
        if task_id is None and site is None:
            raise BadMessage("neither 'task_id' nor 'site'")
        return cls(task_id=task_id, site=site)


# -- server -> site ----------------------------------------------------------------------
@dataclass(frozen=True)
class TaskHeaders:
    """A TASK as a site sees it: which job, which task."""

    job_id: str
    task_id: str
    task_name: str

    @classmethod
    def from_headers(cls, h: Headers) -> TaskHeaders:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(
            job_id=job_id(h) if "job_id" in h else "",
            task_id=text(h, "task_id"),
            task_name=text(h, "task_name"),
        )


@dataclass(frozen=True)
class JobRef:
    """A message about one job (START_JOB, ABORT_JOB, END_JOB, RESULT_REFUSED)."""

    job_id: str

    @classmethod
    def from_headers(cls, h: Headers) -> JobRef:
        """Parse; BadMessage when ``job_id`` is missing or not a short string."""
        return cls(job_id=job_id(h))


@dataclass(frozen=True)
class StartJob:
    """A START_JOB: the job's sites (the zip travels as the model)."""

    job_id: str
    sites: list[str]

    @classmethod
    def from_headers(cls, h: Headers) -> StartJob:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(job_id=job_id(h), sites=text_list(h, "sites"))


@dataclass(frozen=True)
class Request:
    """A REQUEST relayed from an admin: ``cmd`` with its ``args``; answered under ``id``."""

    id: str | None
    cmd: str
    args: dict[str, Any]

    @classmethod
    def from_headers(cls, h: Headers) -> Request:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        args = h.get("args") or {}
        if not isinstance(args, dict):
            raise BadMessage(f"'args' must be an object, got {type(args).__name__}")
        return cls(id=optional_text(h, "id"), cmd=text(h, "cmd"), args=args)


@dataclass(frozen=True)
class ResultRefused:
    """A RESULT_REFUSED: the server refused a result of this site (``error`` says why)."""

    job_id: str
    task_id: str
    error: str

    @classmethod
    def from_headers(cls, h: Headers) -> ResultRefused:
        """Parse; BadMessage when a field is missing or of the wrong type."""
        return cls(
            job_id=job_id(h),
            task_id=text(h, "task_id"),
            error=text(h, "error", limit=MAX_DETAIL),
        )
