"""The server's handlers of the job commands: submit, list, get, abort, clone, delete,
download, stats, errors and reset_errors (which hides the errors recorded so far from
show_errors; the job's history keeps them).

Each gets the :class:`~fedra.runtime.admin_host.AdminHost` and an already validated and
authorized :class:`~fedra.runtime.admin_host.AdminRequest`, and answers the result type the
command declares (:mod:`fedra.core.admin_results`). Anything the admin got wrong raises a
FedraError with a one-line message.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import msgspec

from fedra.core import ConfigError, FedraError, JobMeta, JobStatus
from fedra.core.admin_results import (
    AbortResult,
    Done,
    Downloaded,
    ErrorsReset,
    JobCreated,
    JobErrors,
    JobInfo,
    JobList,
    JobStats,
    StatusEntry,
)
from fedra.core.admin_spec import arg_flag, arg_optional_text, arg_text
from fedra.core.jsonfile import JsonObject, JsonValue
from fedra.jobstore import JobRecord, meta_as_dict
from fedra.runtime.admin_host import AdminHost, AdminRequest, Handler, HandlerResult
from fedra.runtime.admin_rights import Access, owner_of
from fedra.runtime.confined import regular_files
from fedra.runtime.job_summary import SUMMARY_FILE, summary_bytes

log = logging.getLogger("fedra.admin")


class Signer(msgspec.Struct, frozen=True):
    """Who signed a submitted job, as recorded in its ``run_info.submission``."""

    name: str
    org: str
    role: str
    signature: str
    certificate: str


class Owner(msgspec.Struct, frozen=True):
    """Who a job belongs to, as recorded in its ``run_info.owner``."""

    name: str
    org: str
    role: str


def job_info(host: AdminHost, record: JobRecord, detailed: bool) -> JobInfo:
    """A job as the admin sees it."""
    end = record.history[-1].at if record.status.is_final else time.time()
    info = JobInfo(
        job_id=record.job_id,
        name=record.name,
        status=record.status,
        submitter=record.submitter,
        submitted_at=record.submitted_at,
        duration_s=round(end - record.submitted_at, 3),
    )
    if not detailed:
        return info
    return msgspec.structs.replace(
        info,
        history=[StatusEntry(c.status, c.at, c.reason) for c in record.history],
        waiting=None if record.status.is_final else host.waiting_reason(record.job_id),
        failure=record.failure,
        run_info=record.run_info,
    )


def may_view(access: Access, record: JobRecord) -> bool:
    """Whether the admin's ``view`` scope reaches the job."""
    return access.may_job("view", owner_of(record.run_info, record.submitter))


def check_submission(host: AdminHost, blob: bytes, request: AdminRequest) -> Signer:
    """Verify the admin's signature of a job archive; who signed it."""
    from fedra.pki import CertificateError, verify_job

    signature = arg_optional_text(request.args, "signature")
    certificate = arg_optional_text(request.args, "certificate")
    user = request.access.caller.name
    if signature is None or certificate is None:
        error = ConfigError("the job is not signed: submit it with fedra (admin Session/CLI)")
        error.hint = "jobs are signed with the admin kit's key; unsigned jobs are refused"
        raise error
    try:
        signer = verify_job(blob, signature, certificate.encode(), host.ca_pem)
    except CertificateError as exc:
        raise ConfigError(f"job signature refused: {exc}") from exc
    if signer.name != user:
        raise ConfigError(f"the job is signed by {signer.name}, but {user} submits it")
    return Signer(signer.name, signer.org, signer.role, signature, certificate)


def check_resources(host: AdminHost, meta: JobMeta) -> None:
    """Refuse a resource_spec no site could ever hold (checked against connected sites)."""
    from fedra.scheduler import ResourceError, shortfall

    for site, spec in meta.resource_spec.items():
        if host.project_sites is not None and site not in host.project_sites:
            raise ConfigError(f"resource_spec names {site!r}, which is not a site of this project")
        view = host.site(site)
        if view is None or view.total is None:
            continue  # checked by the scheduler once the site connects
        try:
            reason = shortfall(site, spec, view.total)
        except ResourceError as exc:
            raise ConfigError(f"resource_spec: {exc}") from exc
        if reason is not None:
            raise ConfigError(
                f"the job can never run: resource_spec asks {site} for more than it has "
                f"({reason} when idle)"
            )


def _owner(access: Access) -> JsonObject:
    caller = access.caller
    owner: JsonObject = msgspec.to_builtins(Owner(caller.name, caller.org, caller.role))
    return owner


def _submit(host: AdminHost, request: AdminRequest) -> HandlerResult:
    from fedra.job import load_job
    from fedra.job.archive import unzip_job

    user, blob = request.access.caller.name, request.blob
    if blob is None:
        raise ConfigError("submit_job needs the job folder (zipped)")
    signer = check_submission(host, blob, request)
    with tempfile.TemporaryDirectory(prefix="fedra-submit-") as tmp:
        folder = Path(tmp) / "job"
        try:
            # The transport refused a bigger upload from its declared size; this bounds the
            # zip (and its junk), load_job the arrays of its .npz files.
            unzip_job(blob, folder, max_archive_bytes=host.max_job_bytes)
            job = load_job(folder)  # fully validated before anything is stored
        except FedraError as exc:
            log.warning("refused a job of %d bytes from %s: %s", len(blob), user, exc)
            raise
        meta: JsonObject = json.loads((folder / "meta.json").read_text())
    check_resources(host, job.meta)
    record = host.store.create(meta, blob, submitter=user)
    submission: JsonObject = msgspec.to_builtins(signer)
    info: JsonObject = {"submission": submission, "owner": _owner(request.access)}
    host.store.update_run_info(record.job_id, info)
    log.info("job %s (%s) submitted by %s (signature checked)", record.job_id, job.meta.name, user)
    host.wake()
    return JobCreated(record.job_id), None


def _list(host: AdminHost, request: AdminRequest) -> HandlerResult:
    prefix, detailed = arg_optional_text(request.args, "prefix"), arg_flag(request.args, "detailed")
    records = [r for r in host.store.list(prefix=prefix) if may_view(request.access, r)]
    return JobList([job_info(host, r, detailed) for r in records]), None


def _get(host: AdminHost, request: AdminRequest) -> HandlerResult:
    return job_info(host, host.store.get(arg_text(request.args, "job_id")), True), None


def _abort(host: AdminHost, request: AdminRequest) -> HandlerResult:
    job_id = arg_text(request.args, "job_id")
    status = host.abort(job_id, f"aborted by {request.access.caller.name}")
    return AbortResult(job_id, status), None


def _clone(host: AdminHost, request: AdminRequest) -> HandlerResult:
    record = host.store.get(arg_text(request.args, "job_id"))
    user = request.access.caller.name
    clone = host.store.create(meta_as_dict(record.meta), host.store.job_zip(record.job_id), user)
    # The archive is the same bytes: the original signature still vouches for its content
    # (the sites check it); the clone belongs to, and is recorded as submitted by, the cloner.
    submission: JsonValue = record.run_info.get("submission")
    signer = submission.get("name") if isinstance(submission, dict) else None
    info: JsonObject = {
        "owner": _owner(request.access),
        "cloned_from": {"job_id": record.job_id, "signer": signer},
    }
    if submission is not None:
        info["submission"] = submission
    host.store.update_run_info(clone.job_id, info)
    log.info(
        "job %s cloned from %s by %s (signed by %s)", clone.job_id, record.job_id, user, signer
    )
    host.wake()
    return JobCreated(clone.job_id), None


def _delete(host: AdminHost, request: AdminRequest) -> HandlerResult:
    host.store.delete(arg_text(request.args, "job_id"))
    return Done(), None


def _download(host: AdminHost, request: AdminRequest) -> HandlerResult:
    job_id = arg_text(request.args, "job_id")
    record = host.store.get(job_id)
    buffer = io.BytesIO()
    count, skipped = 0, list[str]()
    workspace = host.store.workspace(job_id)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, fd in regular_files(workspace, skipped):
            if name == SUMMARY_FILE:  # not the job's to write: the server's record says it
                os.close(fd)
                continue
            with os.fdopen(fd, "rb") as src, zf.open(name, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)  # what was checked is what is read
            count += 1
        zf.writestr(SUMMARY_FILE, summary_bytes(record, workspace))
        count += 1
    for entry in skipped:
        log.warning("download_job %s: skipped %s", job_id, entry)
    return Downloaded(count), buffer.getvalue()


def _stats(host: AdminHost, request: AdminRequest) -> HandlerResult:
    record = host.store.get(arg_text(request.args, "job_id"))
    rounds = record.run_info.get("rounds")
    sites = record.run_info.get("sites")
    return JobStats(
        status=record.status,
        rounds=[r for r in rounds if isinstance(r, dict)] if isinstance(rounds, list) else [],
        sites=list(sites) if isinstance(sites, list) else [],
    ), None


_FAILED = (JobStatus.FINISHED_EXECUTION_EXCEPTION, JobStatus.FAILED_TO_RUN)


def _reset_at(record: JobRecord) -> float | None:
    """When the job's errors were last reset (``run_info.errors_reset.at``), or None."""
    entry = record.run_info.get("errors_reset")
    at = entry.get("at") if isinstance(entry, dict) else None
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None


def _recorded_errors(record: JobRecord) -> tuple[JsonObject | None, list[str], float | None]:
    """(failure, errors, reset time): what was recorded since the last ``reset_errors``.

    The failure is recorded with the failed status change, so it counts as reset when no
    failed change came after the reset.
    """
    reset_at = _reset_at(record)
    failed = [c for c in record.history if c.status in _FAILED]
    if reset_at is not None:
        failed = [c for c in failed if c.at > reset_at]
    failure = record.failure if reset_at is None or failed else None
    return failure, [c.reason for c in failed], reset_at


def _errors(host: AdminHost, request: AdminRequest) -> HandlerResult:
    record = host.store.get(arg_text(request.args, "job_id"))
    failure, errors, reset_at = _recorded_errors(record)
    return JobErrors(failure=failure, errors=errors, reset_at=reset_at), None


def _reset_errors(host: AdminHost, request: AdminRequest) -> HandlerResult:
    job_id = arg_text(request.args, "job_id")
    failure, errors, _ = _recorded_errors(host.store.get(job_id))
    cleared = len(errors) + (1 if failure is not None and not errors else 0)
    at = time.time()
    by = request.access.caller.name
    host.store.update_run_info(job_id, {"errors_reset": {"at": at, "by": by}})
    log.info("errors of job %s reset by %s (%d cleared)", job_id, by, cleared)
    return ErrorsReset(job_id, cleared, at), None


#: The handlers of the job commands, by command name.
JOB_HANDLERS: dict[str, Handler] = {
    "submit_job": _submit,
    "list_jobs": _list,
    "get_job": _get,
    "abort_job": _abort,
    "clone_job": _clone,
    "delete_job": _delete,
    "download_job": _download,
    "show_stats": _stats,
    "show_errors": _errors,
    "reset_errors": _reset_errors,
}
