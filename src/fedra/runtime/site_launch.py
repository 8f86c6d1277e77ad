"""Checking and starting a job's site job process: the site parent's slow steps.

:func:`check_job_here` unpacks a job and checks its signature and the site's policy;
:func:`start_process` allocates the job's resources and starts its process, until it is
ready. Both run in the site parent's shell, for the actions of its state machine.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fedra.core import FedraError
from fedra.protocol import FROM_SITE_JOB, JobState, Ready, decode
from fedra.runtime.config import SiteKit
from fedra.runtime.isolation import prepare_job
from fedra.runtime.procs import JobListener, end_group, spawn
from fedra.runtime.site_events import CheckJob, JobChecked, StartProcess
from fedra.runtime.site_resources import SiteResourceBook
from fedra.scheduler import ResourceError
from fedra.transport import LocalChannel, Spool, accept_channel

log = logging.getLogger("fedra.site")


@dataclass
class SiteJob:
    """A job's site job process (one start of it: ``run``)."""

    job_id: str
    run: int
    proc: subprocess.Popen[bytes]
    channel: LocalChannel
    log_path: Path


def check_job_here(kit: SiteKit, ca_pem: bytes, action: CheckJob) -> JobChecked:
    """Unpack the job and check its signature and the site's policy: a JobChecked with the
    refusal, or the error that stopped the check."""
    from fedra.job.archive import unzip_job
    from fedra.runtime.authz import JobRefused, check_job

    job_id, start = action.job_id, action.start
    job_dir = kit.root / "jobs" / job_id / "job"
    try:
        if not job_dir.exists():
            unzip_job(action.archive, job_dir)
        signed = (start.signature, start.certificate)
        args = (kit.root, kit.org, ca_pem, action.archive, signed, job_dir)
        submitter = check_job(*args, site=kit.name)
        if why := kit.roster.admin_refusal(
            submitter.name, submitter.org, submitter.role, submitter.fingerprint
        ):
            raise JobRefused(f"its signer: {why}")
    except JobRefused as exc:
        return JobChecked(job_id, action.run, refusal=str(exc))
    except Exception as exc:
        return JobChecked(job_id, action.run, error=str(exc))
    log.info(
        "job %s submitted by %s (%s, %s): signature and policy checked",
        job_id,
        submitter.name,
        submitter.role,
        submitter.org,
    )
    return JobChecked(job_id, action.run)


def _allocate(
    kit: SiteKit, resources: SiteResourceBook, job_id: str, job_dir: Path
) -> dict[str, str]:
    """Allocate what the job asks of this site; the environment for its processes."""
    from fedra.core.jobspec import META_FILE, parse_meta

    meta = parse_meta(json.loads((job_dir / META_FILE).read_text(encoding="utf-8")))
    spec = meta.resource_spec.get(kit.name, {})
    try:
        allocation = resources.allocate(job_id, spec)
    except ResourceError as exc:
        raise FedraError(f"{kit.name} cannot run job {job_id}: {exc}") from exc
    env = dict(os.environ)
    if resources.total.num_gpus:
        # Only this job's processes see its GPUs ('' hides them all from a CPU-only job).
        env["CUDA_VISIBLE_DEVICES"] = allocation.cuda_visible_devices()
    log.info("job %s: allocated %s", job_id, dict(allocation.amounts) or "nothing")
    return env


def start_process(
    kit: SiteKit, resources: SiteResourceBook, spool: Spool, action: StartProcess
) -> SiteJob:
    """Allocate the job's resources, start its process and wait until it is ready; any
    failure raises (its process, if any, ended)."""
    job_id, root = action.job_id, kit.root / "jobs" / action.job_id
    env = _allocate(kit, resources, job_id, root / "job")
    listener = JobListener("fedra-cj-", "cj.sock")
    proc: subprocess.Popen[bytes] | None = None
    try:
        launch = prepare_job(kit.root, root, Path(listener.folder), env)  # user, kit copy
        args = {
            "--job-id": job_id,
            "--job-dir": str(root / "job"),
            "--workdir": str(root),
            "--socket": listener.path,
            "--site": kit.name,
            "--index": str(action.index),
            "--num-sites": str(action.num_sites),
            "--kit": str(launch.kit),
        }
        argv = [word for pair in args.items() for word in pair]
        log_path = root / "log.txt"
        proc = spawn("fedra.runtime.site_job", argv, log_path, root, launch.env, launch.user)
        channel = accept_channel(listener, timeout=60.0, spool=spool, pass_files=True)
        first = decode(channel.recv(timeout=120.0), FROM_SITE_JOB)
        if not isinstance(first, Ready):
            channel.close()
            detail = first.detail if isinstance(first, JobState) else type(first).__name__
            raise FedraError(detail)
    except BaseException:
        if proc is not None:
            end_group(proc, grace=2.0)
        raise
    finally:
        listener.close()
    return SiteJob(job_id, action.run, proc, channel, log_path)
