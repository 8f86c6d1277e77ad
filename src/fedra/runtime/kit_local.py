"""The editable ``local/*.default`` files of a server's or a site's startup kit.

Provisioned kits (``fedra provision``) and POC kits (``fedra poc prepare``) get the same ones;
they live here, beside the runtime that reads them, so that both can write them. They are
written as ``*.default`` so that a participant's own edits (saved without the suffix, e.g.
``local/authorization.json``) survive the next provisioning. ``local/`` is never signed.
The authorization policy says, per admin role, how far each right reaches on this
participant:

=============  ===========================================================================
right          what it allows
=============  ===========================================================================
submit_job     send a job here                 scope: ``any`` (any org) | ``own_org`` | ``none``
manage_job     abort, clone, delete a job      scope: ``any`` | ``own_org`` (jobs submitted by
               the admin's org) | ``own`` (jobs the admin submitted) | ``none``
download_job   download a job's results        scope: as ``manage_job``
view           list jobs, status, logs         scope: as ``manage_job``
operate        restart or shut this site down  scope: ``any`` | ``own_org`` (the site's org is
               the admin's) | ``none``
byoc           run a job's own code (custom/)  scope: ``any`` | ``own_org`` | ``none``
=============  ===========================================================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypedDict

import msgspec

from fedra.core.kitfile import DEFAULT_WINDOW, NETWORK_FILE, NetworkEntry, NetworkFile

#: The rights of an authorization policy, and the scopes a right may have.
RIGHTS = ("submit_job", "manage_job", "download_job", "view", "operate", "byoc")
SCOPES = ("any", "own_org", "own", "none")

Scope = Literal["any", "own_org", "own", "none"]


class Rights(TypedDict):
    submit_job: Scope
    manage_job: Scope
    download_job: Scope
    view: Scope
    operate: Scope
    byoc: Scope


class Authorization(TypedDict):
    """``authorization.json``: how far each right of each admin role reaches here."""

    format_version: int
    comment: str
    site: str
    org: str
    enable_byoc: bool
    roles: dict[str, Rights]


class PrivacyScope(TypedDict):
    """A named set of filters (``privacy.json``)."""

    name: str
    task_data_filters: list[str]
    task_result_filters: list[str]


class Privacy(TypedDict):
    """``privacy.json``: the scopes of filters a site applies."""

    format_version: int
    comment: str
    default_scope: str
    scopes: list[PrivacyScope]


class Resources(TypedDict, total=False):
    """``resources.json``: what this participant offers to jobs (sites: GPUs and extras)."""

    format_version: int
    comment: str
    num_gpus: int
    mem_per_gpu: float
    extra: dict[str, float]


class LevelOf(TypedDict):
    """A logger's level in a :func:`logging.config.dictConfig`."""

    level: str


class LogConfig(TypedDict):
    """An incremental :func:`logging.config.dictConfig`."""

    version: int
    incremental: bool
    root: LevelOf
    loggers: dict[str, LevelOf]


_BASE: dict[str, Rights] = {
    "project_admin": {
        "submit_job": "any",
        "manage_job": "any",
        "download_job": "any",
        "view": "any",
        "operate": "any",
        "byoc": "any",
    },
    "org_admin": {
        "submit_job": "none",
        "manage_job": "own_org",
        "download_job": "own_org",
        "view": "any",
        "operate": "own_org",
        "byoc": "none",
    },
    "lead": {
        "submit_job": "any",
        "manage_job": "own",
        "download_job": "own",
        "view": "any",
        "operate": "own_org",
        "byoc": "any",
    },
    "member": {
        "submit_job": "none",
        "manage_job": "none",
        "download_job": "none",
        "view": "any",
        "operate": "none",
        "byoc": "none",
    },
}


def authorization(name: str, org: str, *, enable_byoc: bool) -> Authorization:
    """The default policy of participant ``name``; ``byoc`` is ``none`` for every role unless
    ``enable_byoc``."""
    roles: dict[str, Rights] = {
        role: {**rights, "byoc": rights["byoc"] if enable_byoc else "none"}
        for role, rights in _BASE.items()
    }
    return {
        "format_version": 1,
        "comment": "Copy to authorization.json to change. Scopes: any, own_org, own, none.",
        "site": name,
        "org": org,
        "enable_byoc": enable_byoc,
        "roles": roles,
    }


def privacy() -> Privacy:
    """No privacy filters: results leave the site as the job computes them."""
    return {
        "format_version": 1,
        "comment": "Copy to privacy.json to change. Filters run on this site on task data "
        "coming in and results going out.",
        "default_scope": "public",
        "scopes": [{"name": "public", "task_data_filters": [], "task_result_filters": []}],
    }


def resources(*, server: bool) -> Resources:
    """What this participant offers to jobs; the scheduler never exceeds it."""
    if server:
        return {
            "format_version": 1,
            "comment": "The server's job limit is max_jobs in startup/fed_server.json.",
        }
    return {
        "format_version": 1,
        "comment": (
            "Copy to resources.json to change. num_cpus and memory (GiB) default to what the "
            'machine has; site-specific resources go under extra, e.g. {"fpga": 1}.'
        ),
        "num_gpus": 0,
        "mem_per_gpu": 0,
        "extra": {},
    }


def log_config() -> LogConfig:
    """A :func:`logging.config.dictConfig` applied on top of the process's log.txt handler."""
    return {
        "version": 1,
        "incremental": True,
        "root": {"level": "INFO"},
        "loggers": {"fedra": {"level": "INFO"}, "grpc": {"level": "WARNING"}},
    }


def network(entry: NetworkEntry | None, *, server: bool) -> NetworkFile:
    """``network.json``: the flow control the kit was provisioned with, to tune locally."""
    if entry is None and server:
        entry = NetworkEntry(receive_window=DEFAULT_WINDOW)
    values = msgspec.structs.asdict(entry) if entry is not None else {}
    side = "a site's uploads to this server" if server else "downloads from the server"
    comment = (
        f"Copy to network.json to change; it then replaces the project's network settings. "
        f"receive_window (bytes, 65536-67108864): how much of {side} may be in flight; or "
        "path_mbit and path_rtt_ms: the path to fill (window = 4 x rate x round trip). "
        + (
            "Each connection still uploading (or refused its turn) may hold this much of the "
            "server's memory; see docs/networks.md."
            if server
            else "None given: gRPC sizes the window by itself (BDP probing)."
        )
    )
    return NetworkFile(comment=comment, **values)


def write_local(
    kit: Path,
    name: str,
    org: str,
    *,
    server: bool,
    enable_byoc: bool,
    network_entry: NetworkEntry | None = None,
) -> Path:
    """Write ``kit/local/*.default``; return the ``local/`` folder."""
    local = kit / "local"
    local.mkdir(mode=0o755, exist_ok=True)
    files: dict[str, Authorization | Privacy | Resources | LogConfig] = {
        "authorization.json.default": authorization(name, org, enable_byoc=enable_byoc),
        "privacy.json.default": privacy(),
        "resources.json.default": resources(server=server),
        "log_config.json.default": log_config(),
    }
    for file, data in files.items():
        (local / file).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    settings = msgspec.to_builtins(network(network_entry, server=server))
    text = json.dumps({"comment": settings.pop("comment"), **settings}, indent=2) + "\n"
    (local / f"{NETWORK_FILE}.default").write_text(text, encoding="utf-8")
    return local
