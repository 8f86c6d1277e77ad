"""Which admin may run which command on what, by role: the server's side of the declarations.

Each command declares the right it needs and the object it acts on
(:mod:`fedra.core.admin_spec`); the server's ``local/authorization.json`` (else
``authorization.json.default``, else :data:`SERVER_DEFAULT`) gives each role a scope per
right. Scopes, for every right:

- ``any``: every job and participant;
- ``own_org``: jobs submitted (or cloned) by an admin of the same org; participants (sites,
  the server) of the same org;
- ``own``: jobs this admin submitted (or cloned); no participant;
- ``none`` (also any unknown role, right or scope value): nothing.

``ls`` of the workspace needs ``view`` on the participant (and lists only the jobs the view
scope reaches); ``ls`` of a job's folder needs ``view`` on the job. A command with no object
needs a scope other than ``none`` (``operate``: ``any``); commands that list (``list_jobs``,
``check_status``) show only what the ``view`` scope reaches. The admin's name, org and role
come from the certificate of the connection, never from the request. Decisions are pure: the
server supplies the objects through :class:`Objects`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fedra.core import FedraError
from fedra.core.admin_spec import SCOPES, AdminCommand, Args, ArgValue, Right, arg_text
from fedra.core.jsonfile import JsonValue
from fedra.runtime.confined import parse_file, parse_folder

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

#: The participant name of the server in admin commands.
SERVER_TARGET = "server"


class NotAllowed(FedraError):
    """The admin's role does not allow this command (on this job or site)."""

    exit_code = 8


class Caller(Protocol):
    """Who sends a command: from the connection's certificate."""

    @property
    def name(self) -> str:
        """The admin's name (certificate CN)."""

    @property
    def org(self) -> str:
        """The admin's org (certificate O)."""

    @property
    def role(self) -> str:
        """The admin's role (certificate OU)."""


@dataclass(frozen=True)
class Owner:
    """Who a job belongs to: the admin who submitted or cloned it."""

    name: str | None
    org: str | None


class Objects(Protocol):
    """What the server knows about the objects commands act on."""

    server_org: str

    def job_owner(self, job_id: str) -> Owner:
        """The owner of a job (raises the store's JobNotFound for an unknown id)."""

    def site_org(self, name: str) -> str | None:
        """The org of a connected site; None when no such site is connected."""

    def site_names(self) -> list[str]:
        """The connected sites, sorted."""


def owner_of(run_info: Mapping[str, JsonValue], submitter: str) -> Owner:
    """The owner recorded with a job: ``owner`` (set at submit and clone), else the
    signer of the submission, else the store's submitter (org unknown)."""
    for key in ("owner", "submission"):
        entry = run_info.get(key)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(entry, dict) and isinstance(name, str):
            org = entry.get("org")
            return Owner(name, org if isinstance(org, str) else None)
    return Owner(submitter, None)


def load_server_policy(kit_root: Path) -> tuple[dict[str, dict[str, str]], str]:
    """The server's policy by role, and where it came from."""
    from fedra.runtime.authz import load_policy

    policy, source = load_policy(kit_root)
    if source.startswith("the built-in"):
        return SERVER_DEFAULT, "the built-in default policy"
    return policy, source


@dataclass(frozen=True)
class Access:
    """One admin's scopes under the server's policy: decides, refuses in one line."""

    caller: Caller
    #: Scopes by role and right, as the policy file holds them (anything malformed: none).
    policy: Mapping[str, Mapping[str, str]]
    source: str

    def scope(self, right: Right) -> str:
        """The admin's scope for ``right`` (``none`` for anything unknown or malformed)."""
        rights = self.policy.get(self.caller.role)
        value = rights.get(right) if isinstance(rights, Mapping) else None
        return value if isinstance(value, str) and value in SCOPES else "none"

    def may_job(self, right: Right, owner: Owner) -> bool:
        """Whether the admin's ``right`` reaches a job of ``owner``."""
        scope = self.scope(right)
        if scope == "any":
            return True
        if scope == "own":
            return owner.name is not None and owner.name == self.caller.name
        if scope == "own_org":
            return owner.org is not None and owner.org == self.caller.org
        return False

    def may_participant(self, right: Right, org: str | None) -> bool:
        """Whether the admin's ``right`` reaches a participant of ``org`` (None: unknown)."""
        scope = self.scope(right)
        return scope == "any" or (scope == "own_org" and org is not None and org == self.caller.org)

    def may(self, right: Right) -> bool:
        """Whether the admin has ``right`` at all (``operate`` without object: ``any``)."""
        scope = self.scope(right)
        return scope == "any" if right == "operate" else scope != "none"

    def require(self, ok: bool, right: Right, what: str) -> None:
        """NotAllowed (one line: who, what, which scope, which policy) unless ``ok``."""
        if not ok:
            caller = self.caller
            raise NotAllowed(
                f"not allowed: {caller.role} {caller.name} may not {what} "
                f"({right}: {self.scope(right)}, {self.source})"
            )

    def require_job(self, right: Right, cmd: str, owner: Owner) -> None:
        """NotAllowed unless ``right`` reaches the job of ``owner``."""
        what = f"{cmd} on a job of {owner.name} ({owner.org or 'org unknown'})"
        self.require(self.may_job(right, owner), right, what)


def operated_sites(cmd: str, args: Mapping[str, ArgValue], connected: Sequence[str]) -> list[str]:
    """The participants an ``operate`` command acts on (the server as ``server``): the one
    list both the authorization and the handler use."""
    if cmd == "remove_client":
        return [str(args["name"])]
    target = args.get("target")
    given = args.get("names")
    names = [str(n) for n in given] if isinstance(given, list) and given else list(connected)
    if target == "client":
        return names
    if target == "server":
        return [SERVER_TARGET]
    return [*list(connected), SERVER_TARGET]


def authorize(access: Access, command: AdminCommand, args: Args, objects: Objects) -> None:
    """NotAllowed unless the admin may run ``command`` with exactly these validated ``args``."""
    right, cmd = command.right, command.name
    if command.acts_on == "nothing":
        access.require(access.may(right), right, cmd)
    elif command.acts_on == "job":
        owner = objects.job_owner(arg_text(args, "job_id"))
        if command.object_right is not None:
            access.require(access.may(right), right, cmd)
            access.require_job(command.object_right, cmd, owner)
        else:
            access.require_job(right, cmd, owner)
    elif command.acts_on == "participant":
        _require_participants(access, right, cmd, [arg_text(args, "target")], objects)
    elif command.acts_on == "sites":
        names = operated_sites(cmd, args, objects.site_names())
        _require_participants(access, right, cmd, names or [SERVER_TARGET], objects)
    elif command.acts_on == "file":
        ref, participant = parse_file(arg_text(args, "file")), arg_text(args, "participant")
        what = f"{cmd} {ref.name} of {participant}"
        if ref.job_id is None:
            _require_participants(access, right, what, [participant], objects)
        else:
            owner = objects.job_owner(ref.job_id)
            access.require_job(right, what, owner)
            if not ref.is_log:  # a job's files (models, code) are what download_job gives
                access.require_job("download_job", what, owner)
    elif command.acts_on == "folder":
        folder, participant = parse_folder(args.get("path")), arg_text(args, "participant")
        what = f"{cmd} {folder.name or 'the workspace'} of {participant}"
        if folder.job_id is None:  # the workspace: its log, and the jobs the view scope reaches
            _require_participants(access, right, what, [participant], objects)
        else:  # names in a job's folder: what view on the job shows (reading needs more)
            access.require_job(right, what, objects.job_owner(folder.job_id))
    else:  # a declaration with an object this server does not know: fail closed
        access.require(False, right, f"{cmd} (acts on {command.acts_on!r})")


def _require_participants(
    access: Access, right: Right, what: str, names: Sequence[str], objects: Objects
) -> None:
    orgs = {n: objects.server_org if n == SERVER_TARGET else objects.site_org(n) for n in names}
    denied = sorted(n for n, org in orgs.items() if not access.may_participant(right, org))
    if denied:
        shown = ", ".join(f"{n} ({orgs[n] or 'not connected'})" for n in denied)
        access.require(False, right, f"{what} on {shown}")
