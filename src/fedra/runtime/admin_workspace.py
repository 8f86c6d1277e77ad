"""The server's handlers of the commands FLARE 2.1 users type by habit: ``info``, ``pwd``,
``ls``, ``head``, ``grep``, ``env`` and ``report_resources``.

Each runs after its arguments were checked and the admin authorized
(:mod:`fedra.runtime.admin_service`). For the server they read its own folder through
:mod:`fedra.runtime.workspace_files`; for a site they are relayed (the site confines and
bounds the request again itself) and its answer is checked against the declared type. A
workspace listing shows only the jobs the admin's ``view`` scope reaches, the site's as the
server's: a job the store does not know is left out.
"""

from __future__ import annotations

import contextlib
import os

import msgspec

from fedra import __version__
from fedra.core.admin_results import (
    AdminIdentity,
    DirEntry,
    EnvInfo,
    FileText,
    Listing,
    ResourceReport,
    ServerInfo,
    SiteResourcesEntry,
    Workspace,
)
from fedra.core.admin_spec import RIGHTS, arg_flag, arg_int, arg_text
from fedra.core.jsonfile import JsonObject
from fedra.jobstore import JobNotFound
from fedra.runtime.admin_host import AdminHost, AdminRequest, Handler, HandlerResult
from fedra.runtime.admin_jobs import may_view
from fedra.runtime.admin_rights import SERVER_TARGET, Access
from fedra.runtime.admin_system import relay, server_file
from fedra.runtime.confined import LOG_FILE, parse_file, parse_folder
from fedra.runtime.facts import env_info, workspace
from fedra.runtime.workspace_files import (
    MAX_ENTRIES,
    entry_of,
    grep_text,
    head_text,
    list_folder,
)


def _info(host: AdminHost, request: AdminRequest) -> HandlerResult:
    access = request.access
    caller = access.caller
    return ServerInfo(
        project=host.project,
        server=host.name,
        org=host.org,
        version=__version__,
        started=host.started,
        admin=AdminIdentity(caller.name, caller.org, caller.role),
        scopes={right: access.scope(right) for right in RIGHTS},
        policy=access.source,
        ha=host.ha,
        hot=host.name,  # only the hot server answers admins
        ssid=host.ssid,
    ), None


def _pwd(host: AdminHost, request: AdminRequest) -> HandlerResult:
    target = arg_text(request.args, "target")
    if target != SERVER_TARGET:
        return relay(host, target, "pwd", {}, Workspace), None
    return workspace(host.name, host.root), None


def _env(host: AdminHost, request: AdminRequest) -> HandlerResult:
    target = arg_text(request.args, "target")
    if target != SERVER_TARGET:
        return relay(host, target, "env", {}, EnvInfo), None
    return env_info(host.name, None), None


def _visible(host: AdminHost, access: Access, job_id: str) -> bool:
    """Whether a job folder of a site's workspace is a job the admin may see."""
    try:
        return may_view(access, host.store.get(job_id))
    except (JobNotFound, ValueError):
        return False


def _server_workspace(host: AdminHost, access: Access) -> list[DirEntry]:
    entries: list[DirEntry] = []
    with contextlib.suppress(OSError):
        entries.append(entry_of(LOG_FILE, os.lstat(host.root / LOG_FILE)))
    for record in host.store.list():
        if may_view(access, record):
            entries.append(DirEntry(record.job_id, "dir", round(record.submitted_at, 3)))
    return entries


def _ls(host: AdminHost, request: AdminRequest) -> HandlerResult:
    participant, access = arg_text(request.args, "participant"), request.access
    folder, recursive = parse_folder(request.args.get("path")), arg_flag(request.args, "recursive")
    if participant != SERVER_TARGET:
        args: JsonObject = {"path": folder.name, "recursive": recursive}
        listing = relay(host, participant, "ls", args, Listing)
        if folder.job_id is None:  # the site's jobs: only those the admin may see
            shown = [
                e for e in listing.entries if e.kind != "dir" or _visible(host, access, e.name)
            ]
            listing = msgspec.structs.replace(listing, entries=shown)
        return msgspec.structs.replace(listing, participant=participant), None
    if folder.job_id is None:
        entries = sorted(_server_workspace(host, access), key=lambda e: e.name)
        return Listing(participant, "", entries[:MAX_ENTRIES], len(entries) > MAX_ENTRIES), None
    walk = list_folder(host.store.workspace(folder.job_id), folder.parts, recursive)
    return Listing(participant, folder.name, walk.entries, walk.truncated), None


def _head(host: AdminHost, request: AdminRequest) -> HandlerResult:
    participant = arg_text(request.args, "participant")
    lines, ref = arg_int(request.args, "lines"), parse_file(arg_text(request.args, "file"))
    if participant != SERVER_TARGET:
        args: JsonObject = {"lines": lines, "file": ref.name}
        return relay(host, participant, "head", args, FileText), None
    return FileText(head_text(*server_file(host, ref), lines)), None


def _grep(host: AdminHost, request: AdminRequest) -> HandlerResult:
    participant = arg_text(request.args, "participant")
    pattern, ref = arg_text(request.args, "pattern"), parse_file(arg_text(request.args, "file"))
    ignore_case = arg_flag(request.args, "ignore_case")
    if participant != SERVER_TARGET:
        args: JsonObject = {"pattern": pattern, "file": ref.name, "ignore_case": ignore_case}
        return relay(host, participant, "grep", args, FileText), None
    return FileText(grep_text(*server_file(host, ref), pattern, ignore_case)), None


def _report_resources(host: AdminHost, request: AdminRequest) -> HandlerResult:
    access = request.access
    entries = [
        SiteResourcesEntry(
            name=site.name,
            org=site.org,
            total=site.total.as_dict() if site.total else None,
            free=site.free.as_dict() if site.free else None,
            jobs=list(site.jobs),
        )
        for site in host.sites()
        if access.may_participant("view", site.org)
    ]
    return ResourceReport(entries), None


#: The handlers of the workspace commands, by command name.
WORKSPACE_HANDLERS: dict[str, Handler] = {
    "info": _info,
    "pwd": _pwd,
    "env": _env,
    "ls": _ls,
    "head": _head,
    "grep": _grep,
    "report_resources": _report_resources,
}
