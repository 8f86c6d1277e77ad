"""The scheduling decision: a pure function of (queue, free site resources, running count, now).

:func:`schedule` returns one :class:`Decision` per queued job: :class:`Dispatch` (with the sites
to deploy to) or :class:`Wait` (with a one-line reason for ``list_jobs -d``). It changes
nothing; the caller reserves the resources and moves jobs through the job state machine.

Order
    Jobs that have waited longer than ``aging_s`` come first (FIFO among themselves); then
    higher ``priority`` first; then FIFO by ``submitted_at`` (then queue position).

Fit
    Every mandatory site must be connected, deployable and able to hold its ``resource_spec``
    entry; at least ``min_clients`` deployable sites must be able to hold theirs (a site with no
    entry needs nothing). Resources given to a job dispatched in this call are subtracted from
    the snapshot before the next job is considered.

No starvation (reservation with backfill)
    When a job that is *protected* -- the first job in order that is blocked by resources, or
    any blocked job that has aged -- cannot run because of resources, it *claims* every (site,
    resource) it asks for. A later job may still be dispatched (backfilled) but never onto a
    claimed (site, resource): an optional site where it would consume a claimed resource is
    dropped from its candidates, and if a mandatory site conflicts, or too few sites remain, it
    waits. Resources the protected job needs therefore only accumulate as running jobs finish,
    so it runs after at most the longest running job's remaining time, however many small jobs
    keep arriving. Aging bounds the wait of a low-priority job behind a stream of higher-
    priority ones: after ``aging_s`` it moves to the front and claims its resources too. Jobs
    blocked only because a mandatory site is not connected claim nothing (they are not waiting
    for resources).
    Limitation: a job asking for more than a site's *total* would claim forever; sites reject
    such specs at submission (``ResourceManager.check`` against totals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedra.core.jobspec import SERVER, JobMeta
from fedra.scheduler.resources import ResourceError, SiteResources, demand, shortfall

#: Default seconds after which a waiting job moves to the front and claims its resources.
DEFAULT_AGING_S = 300.0


@dataclass(frozen=True)
class QueuedJob:
    """A submitted job waiting to be scheduled."""

    job_id: str
    meta: JobMeta
    priority: int = 0
    submitted_at: float = 0.0


@dataclass(frozen=True)
class Dispatch:
    """Start the job now on these sites (mandatory ones first, then by name)."""

    job_id: str
    sites: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    """Leave the job queued; ``reason`` says why in one line."""

    job_id: str
    reason: str


Decision = Dispatch | Wait


@dataclass(frozen=True)
class _Plan:
    sites: tuple[str, ...] | None  # None: does not fit
    reason: str
    resource_bound: bool  # blocked by resources (so it may claim them)


def schedule(
    queue: Sequence[QueuedJob],
    sites: Mapping[str, SiteResources],
    running_count: int,
    max_jobs: int,
    now: float,
    aging_s: float = DEFAULT_AGING_S,
) -> list[Decision]:
    """Decide, for every queued job, whether to dispatch it now; decisions in scheduling order.

    ``sites`` maps each connected site to its free resources (a snapshot); ``running_count`` is
    the number of jobs already running; at most ``max_jobs`` run at once.
    """
    order = sorted(
        enumerate(queue),
        key=lambda p: (
            0 if now - p[1].submitted_at > aging_s else 1,
            0 if now - p[1].submitted_at > aging_s else -p[1].priority,
            p[1].submitted_at,
            p[0],
        ),
    )
    free = dict(sites)
    claims: set[tuple[str, str]] = set()
    slots = max_jobs - running_count
    head_seen = False
    decisions: list[Decision] = []
    for _, job in order:
        if slots <= 0:
            decisions.append(Wait(job.job_id, f"{max_jobs} jobs running (the maximum)"))
            continue
        plan = _plan(job.meta, free, claims)
        if plan.sites is not None:
            for site in plan.sites:
                spec = job.meta.resource_spec.get(site, {})
                free[site] = free[site].minus(demand(site, spec, free[site]))
            slots -= 1
            decisions.append(Dispatch(job.job_id, plan.sites))
            continue
        aged = now - job.submitted_at > aging_s
        if plan.resource_bound and (aged or not head_seen):
            claims |= _claims(job.meta, free)
            head_seen = True
        decisions.append(Wait(job.job_id, plan.reason))
    return decisions


def _deployable(meta: JobMeta, connected: Mapping[str, SiteResources]) -> list[str]:
    return sorted(s for s in connected if s != SERVER and meta.app_for_site(s) is not None)


def _claims(meta: JobMeta, free: Mapping[str, SiteResources]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for site, spec in meta.resource_spec.items():
        if site in free:
            try:
                out |= {(site, key) for key in demand(site, spec, free[site])}
            except ResourceError:
                continue
    return out


def _site_reason(
    site: str, meta: JobMeta, free: SiteResources, claims: set[tuple[str, str]]
) -> tuple[str | None, bool]:
    """(None, _) if the site can take the job, else (reason, blocked-by-resources)."""
    spec = meta.resource_spec.get(site, {})
    try:
        consumed = demand(site, spec, free)
        reason = shortfall(site, spec, free)
    except ResourceError as err:
        return str(err), False
    if reason is not None:
        return reason, True
    held = sorted(k for k in consumed if (site, k) in claims)
    if held:
        return f"{site}: {', '.join(held)} held for an earlier waiting job", True
    return None, False


def _plan(meta: JobMeta, free: Mapping[str, SiteResources], claims: set[tuple[str, str]]) -> _Plan:
    missing = [s for s in meta.mandatory_clients if s not in free]
    if missing:
        return _Plan(None, f"mandatory site {', '.join(missing)} not connected", False)
    deployable = _deployable(meta, free)
    undeployable = [s for s in meta.mandatory_clients if s not in deployable]
    if undeployable:
        return _Plan(None, f"mandatory site {', '.join(undeployable)} has no app", False)
    ok: list[str] = []
    reasons: list[str] = []
    bound = False
    for site in deployable:
        reason, by_resources = _site_reason(site, meta, free[site], claims)
        if reason is None:
            ok.append(site)
            continue
        reasons.append(reason)
        bound = bound or by_resources
        if site in meta.mandatory_clients:
            return _Plan(None, f"mandatory {reason}", by_resources)
    if len(ok) < meta.min_clients:
        detail = f": {'; '.join(reasons)}" if reasons else ""
        return _Plan(None, f"needs {meta.min_clients} sites, {len(ok)} can run it{detail}", bound)
    mandatory = [s for s in meta.mandatory_clients if s in ok]
    rest = [s for s in ok if s not in mandatory]
    return _Plan(tuple(mandatory + rest), "", False)
