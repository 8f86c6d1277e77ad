"""A site's own say over which jobs run on it: ``local/authorization.json``.

The site checks every job before starting it: the submitter's signature over the job archive
(the signer's certificate must come from the project CA), the signer's right to submit jobs
here, and, when the job brings code of its own (any file in ``custom/``, a script, a custom
class: see :mod:`fedra.job.code`), the right to run it (BYOC).
The policy file maps each admin role to a scope per right: ``any``, ``own_org`` (the
submitter's org is the site's), ``own`` or ``none``. Without ``authorization.json`` the site
uses ``authorization.json.default`` and, failing that, the built-in default below.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedra.core import ConfigError, FedraError
from fedra.job.code import describe, folder_code
from fedra.pki import CertificateError, Identity, verify_job

#: Without a policy file: project admins and leads may submit jobs and run their code.
DEFAULT_POLICY: dict[str, dict[str, str]] = {
    "project_admin": {"submit_job": "any", "byoc": "any"},
    "org_admin": {"submit_job": "none", "byoc": "none"},
    "lead": {"submit_job": "any", "byoc": "any"},
    "member": {"submit_job": "none", "byoc": "none"},
}


class JobRefused(FedraError):
    """This site will not run the job; the message says why."""


def load_policy(kit_root: Path) -> tuple[dict[str, dict[str, str]], str]:
    """The site's policy by role, and where it came from."""
    local = kit_root / "local"
    for name in ("authorization.json", "authorization.json.default"):
        path = local / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
            roles = data.get("roles") if isinstance(data, dict) else None
            if not isinstance(roles, dict):
                raise ConfigError(f"{path}: roles: expected an object of role -> rights")
            return roles, f"local/{name}"
    return DEFAULT_POLICY, "the built-in default policy"


def _allowed(scope: object, submitter: Identity, site_org: str) -> bool:
    if scope == "any":
        return True
    if scope in ("own_org", "own"):
        return submitter.org == site_org
    return False


def byoc_refusal(submitter: Identity, code: list[str], where: str, source: str) -> str:
    """Why ``where`` refuses a job that brings ``code``: who submitted it, what code, which
    policy (one line, for the submitter and the participant's log)."""
    return (
        f"job submitted by {submitter.name} ({submitter.role}, {submitter.org}) brings its own "
        f"code ({describe(code)}) and {submitter.role} may not run custom code on {where} "
        f"({source}: byoc)"
    )


def check_job(
    kit_root: Path,
    site_org: str,
    ca_pem: bytes,
    archive: bytes,
    signed: tuple[str | None, str | None],
    job_dir: Path,
    *,
    site: str,
) -> Identity:
    """Raise JobRefused unless ``site`` accepts the job; return the verified submitter.
    ``signed``: the submitter's signature over ``archive`` and its certificate (PEM)."""
    signature, certificate = signed
    if signature is None or certificate is None:
        raise JobRefused("the job carries no submitter signature")
    try:
        submitter = verify_job(archive, signature, certificate.encode(), ca_pem)
    except CertificateError as exc:
        raise JobRefused(f"the job's signature is not valid: {exc}") from exc
    policy, source = load_policy(kit_root)
    rights = policy.get(submitter.role, {})
    if not _allowed(rights.get("submit_job", "none"), submitter, site_org):
        raise JobRefused(
            f"{submitter.name} ({submitter.role}, {submitter.org}) may not submit jobs to this "
            f"site ({source})"
        )
    if not _allowed(rights.get("byoc", "none"), submitter, site_org) and (
        code := folder_code(job_dir, site)
    ):
        raise JobRefused(byoc_refusal(submitter, code, "this site", source))
    return submitter
