"""The server's own say over custom code (BYOC), checked before a server job process starts.

Sites check every job against their ``local/authorization.json`` (:mod:`fedra.runtime.authz`);
the server does the same for the code it would run itself: its kit's policy
(``local/authorization.json``, else ``.default``, else the built-in default), the verified
submitter from the job's stored submission (signature and certificate), and the job's
content (:func:`fedra.job.code.folder_code`). A job that brings code the submitter's role may
not run here is refused before any of it is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedra.job.code import describe, folder_code
from fedra.jobstore import JobStore
from fedra.pki import CertificateError, Identity, verify_job
from fedra.runtime.authz import JobRefused, _allowed, byoc_refusal, load_policy
from fedra.runtime.config import ServerKit


def check_server_job(
    kit: ServerKit, ca_pem: bytes, store: JobStore, job_id: str, job_dir: Path
) -> None:
    """Raise :class:`JobRefused` (who, what, why) unless the server may run the job's code."""
    policy, source = load_policy(kit.root)
    submission = store.get(job_id).run_info.get("submission") or {}
    submitter = _submitter(store.job_zip(job_id), submission, ca_pem)
    if isinstance(submitter, Identity):
        rights = policy.get(submitter.role, {})
        if _allowed(rights.get("byoc", "none"), submitter, kit.org):
            return
    code = folder_code(job_dir, None)
    if not code:
        return
    if not isinstance(submitter, Identity):
        raise JobRefused(
            f"{kit.name} refuses job {job_id}: it brings its own code ({describe(code)}) and "
            f"{submitter}, so the server's byoc right cannot be checked"
        )
    raise JobRefused(
        f"{kit.name} refuses job {job_id}: {byoc_refusal(submitter, code, kit.name, source)}"
    )


def _submitter(archive: bytes, submission: Mapping[str, Any], ca_pem: bytes) -> Identity | str:
    """The verified signer of the job's archive, or why there is none."""
    signature, certificate = submission.get("signature"), submission.get("certificate")
    if not isinstance(signature, str) or not isinstance(certificate, str):
        return "the job carries no submitter signature"
    try:
        return verify_job(archive, signature, certificate.encode(), ca_pem)
    except CertificateError as exc:
        return f"the job's signature is not valid: {exc}"
