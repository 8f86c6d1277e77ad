"""The server parent's scheduling: queued jobs to their sites, interrupted jobs resumed.

:func:`schedule_once` runs in the scheduler thread of the server parent (each second, and at
once when woken: a job submitted, a site came or went). A queued job is started once its
sites have reserved its resources (:func:`fedra.scheduler.schedule` picks them); a job that
was running when the server stopped resumes once its sites are back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fedra.core import FedraError, InvalidTransition, JobStatus
from fedra.jobstore import JobRecord
from fedra.runtime.server_jobs import launch
from fedra.scheduler import QueuedJob, Wait, schedule

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent

log = logging.getLogger("fedra.server")
FINAL = {s for s in JobStatus if s.is_final}
#: Seconds a site holds resources reserved for a job that the server is about to start.
RESERVATION_TTL_S = 60.0


def schedule_once(server: ServerParent) -> None:
    """Resume what waits to resume, then start the queued jobs that fit now."""
    if not server.hot:
        return
    for job_id in sorted(server.to_resume):
        _resume(server, job_id)
    records = {r.job_id: r for r in server.store.list(statuses={JobStatus.SUBMITTED})}
    for gone in set(server.waiting) - set(records) - server.to_resume:
        server.waiting.pop(gone, None)
    if not records:
        return
    queue = [QueuedJob(r.job_id, r.meta, r.meta.priority, r.submitted_at) for r in records.values()]
    with server.lock:
        free = {n: h.free for n, h in server.sites.items() if h.free is not None}
        running = len(server.running) + len(server.to_resume)
    decisions = schedule(
        queue, free, running, server.kit.max_jobs, time.time(), server.kit.job_aging_s
    )
    for decision in decisions:
        if isinstance(decision, Wait):
            server.waiting[decision.job_id] = f"waiting: {decision.reason}"
        else:
            _dispatch(server, records[decision.job_id], list(decision.sites))


def _dispatch(server: ServerParent, record: JobRecord, sites: list[str]) -> None:
    """Reserve the job's resources on its sites, then move it to DISPATCHED and start it.

    An optional site that refuses the reservation is left out while the job still has
    its mandatory sites and min_clients; otherwise every reservation is released and the
    job waits with the site's reason. The transition expects SUBMITTED, so a job aborted
    meanwhile is never started.
    """
    job_id, meta = record.job_id, record.meta
    reserved: list[str] = []
    refusals: list[str] = []
    for site in sites:
        spec = dict(meta.resource_spec.get(site, {}))
        args = {"job_id": job_id, "spec": spec, "ttl": RESERVATION_TTL_S}
        try:
            report = server.ask(site, "reserve", args)
        except FedraError as exc:
            refusals.append(str(exc))
            if site in meta.mandatory_clients:
                break
            continue
        reserved.append(site)
        handle = server.sites.get(site)
        if handle is not None:
            handle.update_resources(report)
    enough = len(reserved) >= meta.min_clients
    if not enough or any(s not in reserved for s in meta.mandatory_clients):
        _release(server, job_id, reserved)
        server.waiting[job_id] = f"waiting: {'; '.join(refusals) or 'sites refused'}"
        return
    try:
        server.store.transition(
            job_id,
            JobStatus.DISPATCHED,
            f"dispatched to {', '.join(reserved)}",
            expected=JobStatus.SUBMITTED,
        )
    except InvalidTransition:
        _release(server, job_id, reserved)  # aborted meanwhile: never started
        return
    server.waiting.pop(job_id, None)
    launch(server, job_id, reserved, resume=False)


def _release(server: ServerParent, job_id: str, sites: Sequence[str]) -> None:
    """Give back reservations made for a job that will not start (best effort: they expire)."""
    for site in sites:
        try:
            report = server.ask(site, "free", {"job_id": job_id})
        except FedraError as exc:
            log.info("could not release job %s on %s: %s", job_id, site, exc)
            continue
        handle = server.sites.get(site)
        if handle is not None:
            handle.update_resources(report)


def _resume(server: ServerParent, job_id: str) -> None:
    """Restart a job that was running when the server stopped, once its sites are back."""
    record = server.store.get(job_id)
    if record.status in FINAL:
        server.to_resume.discard(job_id)
        return
    with server.lock:
        if job_id in server.running:
            server.to_resume.discard(job_id)
            return
        connected = sorted(server.sites)
    meta = record.meta
    sites = [s for s in connected if meta.app_for_site(s) is not None]
    missing = [s for s in meta.mandatory_clients if s not in sites]
    if missing:
        server.waiting[job_id] = f"waiting to resume: mandatory sites {missing} not connected"
        return
    if len(sites) < meta.min_clients:
        server.waiting[job_id] = (
            f"waiting to resume: {len(sites)} of min_clients={meta.min_clients} connected"
        )
        return
    server.waiting.pop(job_id, None)
    server.to_resume.discard(job_id)
    launch(server, job_id, sites, resume=True)
