"""The server's handlers of the federation commands: status, host info, logs and files,
removing sites, shutting down and restarting.

Commands that name a site are relayed to it (``tail``, ``cat``, ``sys_info``), and its answer
is checked against the declared result type before it goes back to the admin. ``shutdown``
and ``restart`` act on exactly the participants the authorization checked
(:func:`fedra.runtime.admin_rights.operated_sites`).
"""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path
from typing import TypeVar

import msgspec

from fedra.core import ConfigError, FedraError, JobStatus
from fedra.core.admin_results import (
    BadReply,
    Done,
    FileText,
    RunningJob,
    ServerStatus,
    SiteCapacity,
    SitesStatus,
    SiteState,
    SysInfo,
    decode_result,
)
from fedra.core.admin_spec import arg_int, arg_text
from fedra.core.jsonfile import JsonObject
from fedra.protocol import RESTART_EXIT_CODE
from fedra.runtime.admin_host import AdminHost, AdminRequest, Handler, HandlerResult, SiteView
from fedra.runtime.admin_jobs import may_view
from fedra.runtime.admin_rights import SERVER_TARGET, operated_sites
from fedra.runtime.confined import FileRef, cat_text, parse_file, tail_text

#: Seconds between the reply to ``shutdown server`` and the server stopping (the reply goes
#: out first).
STOP_DELAY_S = 0.5

T = TypeVar("T", bound=msgspec.Struct)


def _site_state(site: SiteView, now: float) -> SiteState:
    resources = SiteCapacity(
        total=site.total.as_dict() if site.total else None,
        free=site.free.as_dict() if site.free else None,
    )
    return SiteState(
        name=site.name,
        org=site.org,
        connected=True,
        last_seen_s=round(now - site.last_seen, 3),
        jobs=list(site.jobs),
        resources=resources,
    )


def _check_status(host: AdminHost, request: AdminRequest) -> HandlerResult:
    access = request.access
    if arg_text(request.args, "target") == "client":
        now = time.monotonic()
        seen = [s for s in host.sites() if access.may_participant("view", s.org)]
        return SitesStatus([_site_state(s, now) for s in seen]), None
    records = [host.store.get(j) for j in host.running_jobs()]
    jobs = [RunningJob(r.job_id, r.name, JobStatus.RUNNING) for r in records if may_view(access, r)]
    sites = [s.name for s in host.sites() if access.may_participant("view", s.org)]
    return ServerStatus("started", host.started, jobs, sites), None


def server_file(host: AdminHost, ref: FileRef) -> tuple[Path, tuple[str, ...]]:
    """Where the server's file ``ref`` lies: (a folder, the parts under it)."""
    if ref.job_id is None:
        return host.root, ref.parts
    return host.store.workspace(ref.job_id), ref.parts


def relay(host: AdminHost, site: str, cmd: str, args: JsonObject, kind: type[T]) -> T:
    """Ask a connected site; its answer as ``kind`` (a malformed answer is refused)."""
    if host.site(site) is None:
        raise ConfigError(f"site {site!r} is not connected")
    try:
        return decode_result(cmd, host.ask_site(site, cmd, args), kind)
    except BadReply as exc:
        raise FedraError(f"site {site}: {exc}") from None


def _tail(host: AdminHost, request: AdminRequest) -> HandlerResult:
    participant = arg_text(request.args, "participant")
    lines, ref = arg_int(request.args, "lines"), parse_file(arg_text(request.args, "file"))
    if participant != SERVER_TARGET:
        args: JsonObject = {"lines": lines, "file": ref.name}
        return relay(host, participant, "tail", args, FileText), None
    return FileText(tail_text(*server_file(host, ref), lines)), None


def _cat(host: AdminHost, request: AdminRequest) -> HandlerResult:
    participant = arg_text(request.args, "participant")
    ref = parse_file(arg_text(request.args, "file"))
    if participant != SERVER_TARGET:
        return relay(host, participant, "cat", {"file": ref.name}, FileText), None
    return FileText(cat_text(*server_file(host, ref))), None


def _sys_info(host: AdminHost, request: AdminRequest) -> HandlerResult:
    target = arg_text(request.args, "target")
    if target != SERVER_TARGET:
        return relay(host, target, "sys_info", {}, SysInfo), None
    fed_port, admin_port = host.ports()
    return SysInfo(
        name=host.name,
        pid=os.getpid(),
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count(),
        fed_port=fed_port,
        admin_port=admin_port,
    ), None


def _remove(host: AdminHost, request: AdminRequest) -> HandlerResult:
    connected = [s.name for s in host.sites()]
    for name in operated_sites("remove_client", request.args, connected):
        if not host.drop_site(name):
            raise ConfigError(f"site {name!r} is not connected")
    return Done(), None


def _operate(host: AdminHost, request: AdminRequest, cmd: str, exit_code: int) -> HandlerResult:
    """Send ``cmd`` to the sites and/or stop the server: exactly the authorized targets."""
    connected = [s.name for s in host.sites()]
    for name in operated_sites(cmd, request.args, connected):
        if name == SERVER_TARGET:
            threading.Timer(STOP_DELAY_S, host.stop, args=(exit_code,)).start()
        else:
            host.tell_site(name, cmd)
    return Done(), None


def _shutdown(host: AdminHost, request: AdminRequest) -> HandlerResult:
    return _operate(host, request, "shutdown", 0)


def _restart(host: AdminHost, request: AdminRequest) -> HandlerResult:
    return _operate(host, request, "restart", RESTART_EXIT_CODE)


#: The handlers of the federation commands, by command name.
SYSTEM_HANDLERS: dict[str, Handler] = {
    "check_status": _check_status,
    "tail": _tail,
    "cat": _cat,
    "sys_info": _sys_info,
    "remove_client": _remove,
    "shutdown": _shutdown,
    "restart": _restart,
}
