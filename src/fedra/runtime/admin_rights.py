"""Which admin may run which command on the server, by role.

Each command needs one right; the server's ``local/authorization.json`` (else
``authorization.json.default``, else :data:`SERVER_DEFAULT`) gives each role a scope per
right: ``any``; ``own_org`` (jobs submitted by an admin of the same org; sites of the same
org); ``own`` (jobs this admin submitted); ``none``. The admin's name, org and role come
from the certificate of the connection, never from the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedra.core import FedraError

RIGHT_OF: dict[str, str] = {
    "submit_job": "submit_job",
    "abort_job": "manage_job",
    "clone_job": "manage_job",
    "delete_job": "manage_job",
    "download_job": "download_job",
    "remove_client": "operate",
    "shutdown": "operate",
    "restart": "operate",
}
"""The right each command needs; any other command needs ``view``."""

SERVER_DEFAULT: dict[str, dict[str, str]] = {
    "project_admin": {
        "submit_job": "any",
        "manage_job": "any",
        "download_job": "any",
        "view": "any",
        "operate": "any",
    },
    "org_admin": {
        "submit_job": "none",
        "manage_job": "own_org",
        "download_job": "own_org",
        "view": "any",
        "operate": "own_org",
    },
    "lead": {
        "submit_job": "any",
        "manage_job": "own",
        "download_job": "own",
        "view": "any",
        "operate": "own_org",
    },
    "member": {
        "submit_job": "none",
        "manage_job": "none",
        "download_job": "none",
        "view": "any",
        "operate": "none",
    },
}


class NotAllowed(FedraError):
    """The admin's role does not allow this command (on this job or site)."""

    exit_code = 8


def load_server_policy(kit_root: Path) -> tuple[dict[str, dict[str, str]], str]:
    """The server's policy by role, and where it came from."""
    from fedra.runtime.authz import load_policy

    policy, source = load_policy(kit_root)
    if source.startswith("the built-in"):
        return SERVER_DEFAULT, "the built-in default policy"
    return policy, source


def scope_of(policy: dict[str, dict[str, str]], role: str, cmd: str) -> str:
    """The scope of ``role`` for the right ``cmd`` needs."""
    return str(policy.get(role, {}).get(RIGHT_OF.get(cmd, "view"), "none"))


def allowed_on_job(scope: str, name: str, org: str, owner: dict[str, Any]) -> bool:
    """Whether an admin with ``scope`` may act on a job submitted by ``owner``."""
    if scope == "any":
        return True
    if scope == "own":
        return owner.get("name") == name
    if scope == "own_org":
        return owner.get("org") is not None and owner.get("org") == org
    return False


def check(
    policy: dict[str, dict[str, str]],
    source: str,
    peer: Any,
    cmd: str,
    *,
    owner: dict[str, Any] | None = None,
    site_orgs: Sequence[str] = (),
) -> None:
    """Raise NotAllowed unless ``peer`` (name, org, role) may run ``cmd``."""
    scope = scope_of(policy, peer.role, cmd)
    right = RIGHT_OF.get(cmd, "view")
    if owner is not None:
        ok = allowed_on_job(scope, peer.name, peer.org, owner)
        what = f"{cmd} on a job of {owner.get('name')} ({owner.get('org')})"
    elif site_orgs:
        ok = scope == "any" or (scope == "own_org" and all(o == peer.org for o in site_orgs))
        what = f"{cmd} on sites of {', '.join(sorted(set(site_orgs)))}"
    else:
        ok = scope == "any" if right == "operate" else scope != "none"
        what = cmd
    if not ok:
        raise NotAllowed(
            f"not allowed: {peer.role} {peer.name} may not {what} ({right}: {scope}, {source})"
        )
