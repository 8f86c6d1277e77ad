"""The admin service of the server parent: validate, authorize and dispatch admin requests.

Requests and replies follow docs/admin-commands.md: :class:`fedra.protocol.AdminRequest` in,
:class:`fedra.protocol.Reply` out, archives as a
``zip`` uint8 array. Each request goes through the same steps, fail closed: the command must
be declared for the server (:mod:`fedra.core.admin_spec`) and have a handler
(:mod:`fedra.runtime.admin_jobs`, :mod:`fedra.runtime.admin_system`,
:mod:`fedra.runtime.admin_workspace`); its args are checked
against the declaration (wrong type, missing or undeclared: refused); the admin (from the
certificate) is authorized on exactly those checked args (:mod:`fedra.runtime.admin_rights`)
before any handler runs; the handler gets exactly those args, and its answer must be the
declared result type. Handlers raise FedraError for anything the user got wrong; the reply
then carries its one-line message, and the server's log one line: who, what, why.

Handlers see the server only through :class:`~fedra.runtime.admin_host.AdminHost`
(for the server parent: :class:`~fedra.runtime.admin_parent.ParentAdminHost`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fedra.core import FedraError
from fedra.core.admin_results import result_data
from fedra.core.admin_spec import ADMIN_COMMAND, BadArguments, server_command, validate_args
from fedra.protocol import FROM_ADMIN, Reply, decode, encode, model_zip, zip_model
from fedra.protocol import AdminRequest as Command
from fedra.runtime.admin_host import AdminHost, AdminRequest, Handler, HandlerResult
from fedra.runtime.admin_jobs import JOB_HANDLERS
from fedra.runtime.admin_parent import ParentAdminHost
from fedra.runtime.admin_rights import (
    Access,
    Caller,
    Owner,
    authorize,
    load_server_policy,
    owner_of,
)
from fedra.runtime.admin_system import SYSTEM_HANDLERS
from fedra.runtime.admin_workspace import WORKSPACE_HANDLERS
from fedra.transport import ChannelClosed, Connection
from fedra.wire import Envelope

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent

log = logging.getLogger("fedra.admin")


def _table(*groups: dict[str, Handler]) -> dict[str, Handler]:
    """The handlers by name; TypeError for one whose command is not declared for the server."""
    table: dict[str, Handler] = {}
    for group in groups:
        for name, handler in group.items():
            declared = ADMIN_COMMAND.get(name)
            if declared is None or declared.served_by != "server" or name in table:
                raise TypeError(f"admin command {name!r} has no (single) server declaration")
            table[name] = handler
    return table


_HANDLERS = _table(JOB_HANDLERS, SYSTEM_HANDLERS, WORKSPACE_HANDLERS)


def handlers() -> dict[str, Handler]:
    """The server's handlers by command name (for the declaration walk in the tests)."""
    return dict(_HANDLERS)


def serve_admin(server: ServerParent, conn: Connection) -> None:
    """Answer one admin connection of the server parent until it closes."""
    serve_host(ParentAdminHost(server), conn)


def serve_host(host: AdminHost, conn: Connection) -> None:
    """Answer one admin connection's requests, on ``host``, until it closes."""
    who = f"{conn.peer.name} ({conn.peer.role})"
    if conn.peer.role in ("client", "server", "overseer"):
        log.warning("refused %s on the admin port: not an admin certificate", who)
        conn.close()
        return
    log.info("admin %s connected", who)
    try:
        while True:
            conn.send(answer(host, conn.recv(), conn.peer))
    except (ChannelClosed, FedraError, OSError):
        log.info("admin %s disconnected", who)


class _HostObjects:
    """The objects of admin commands, as this server knows them (for admin_rights)."""

    def __init__(self, host: AdminHost) -> None:
        self._host = host
        self.server_org = host.org

    def job_owner(self, job_id: str) -> Owner:
        record = self._host.store.get(job_id)
        return owner_of(record.run_info, record.submitter)

    def site_org(self, name: str) -> str | None:
        site = self._host.site(name)
        return site.org if site is not None else None

    def site_names(self) -> list[str]:
        return [s.name for s in self._host.sites()]


def _run(host: AdminHost, env: Envelope, peer: Caller) -> HandlerResult:
    """Validate, then authorize, then run one request (each step fails closed)."""
    message = decode(env, FROM_ADMIN)
    if not isinstance(message, Command):  # FROM_ADMIN carries nothing else
        raise FedraError(f"a {env.kind!r} message is not a request")
    declared = server_command(message.cmd)
    args = validate_args(declared, message.args)
    handler = _HANDLERS.get(declared.name)
    if handler is None:  # declared but not served here: fail closed
        raise BadArguments(f"{declared.name} is not served by the server")
    refusal = host.refusal()
    if refusal is not None:
        error = FedraError(refusal)
        error.hint = "the console finds the hot server through the overseer by itself"
        raise error
    policy, source = load_server_policy(host.root)
    access = Access(peer, policy, source)
    authorize(access, declared, args, _HostObjects(host))
    result, blob = handler(host, AdminRequest(args, model_zip(env.model), access))
    if not isinstance(result, declared.results):
        raise TypeError(f"{declared.name} answered {type(result).__name__}")
    return result, blob


def answer(host: AdminHost, env: Envelope, peer: Caller) -> Envelope:
    """The reply to one request. Every refusal is one log line."""
    raw_id, cmd = env.headers.get("id"), env.headers.get("cmd")
    req_id = raw_id if isinstance(raw_id, str) else ""
    try:
        result, blob = _run(host, env, peer)
    except FedraError as exc:
        log.warning(
            "refused %s from %s (%s, %s): %s",
            _one_line(cmd),
            peer.name,
            peer.role,
            peer.org,
            _one_line(str(exc)),
        )
        return _reply(req_id, error=str(exc), hint=exc.hint)
    except Exception as exc:
        log.exception("admin command %s of %s failed", _one_line(cmd), peer.name)
        return _reply(req_id, error=f"internal error: {exc}")
    model = zip_model(blob) if blob is not None else None
    return encode(Reply(id=req_id, ok=True, data=result_data(result)), model)


def _reply(req_id: str, *, error: str, hint: str | None = None) -> Envelope:
    return encode(Reply(id=req_id, ok=False, error=error, hint=hint))


def _one_line(value: object, limit: int = 300) -> str:
    """``value`` for one log line: control characters escaped, cut short."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."
