"""The overseer's calls without the transport: routing, roles, bodies, saving, answers.

==========================  ==========================  ==========================
call (path)                 who (role in certificate)   body → answer
==========================  ==========================  ==========================
``{api_root}/heartbeat``    server, client, admins      heartbeat → answer
``{api_root}/promote``      project_admin               ``{"name"}`` → full state
``{api_root}/state``        admins                      (empty) → full state
==========================  ==========================  ==========================

Statuses (HTTP's numbers; :mod:`.wire` maps them to gRPC codes): 200; 400 malformed body;
403 wrong role, revoked, or a body that names someone else than the certificate; 404 unknown
call or server; 409 the server cannot be promoted; 503 the state could not be saved (nothing
was answered from it). A state change is saved before the answer that reveals it is sent
(rule 6 of :mod:`.election`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fedra.core import WireError
from fedra.overseer.election import Election
from fedra.overseer.errors import ElectionRefused
from fedra.overseer.messages import (
    MAX_REQUEST_BYTES,
    OverseerAnswer,
    ParticipantHeartbeat,
    PromoteRequest,
    ServerHeartbeat,
    decode,
)
from fedra.overseer.statefile import StateStore
from fedra.pki import ADMIN_ROLES, Identity

log = logging.getLogger(__name__)

#: Roles that may send heartbeats.
HEARTBEAT_ROLES = frozenset({"server", "client"}) | ADMIN_ROLES
#: Roles that may read the full state.
STATE_ROLES = ADMIN_ROLES
#: The one role that may promote a server.
PROMOTE_ROLE = "project_admin"


@dataclass(frozen=True)
class Reply:
    """The outcome of a call: ``answer`` with status 200, else a status and an ``error``."""

    status: int
    answer: OverseerAnswer | None = None
    error: str = ""


def _error(status: int, message: str) -> Reply:
    return Reply(status, error=message)


class OverseerApi:
    """Answers the overseer's requests; thread-safe (one lock around the election and save).

    ``servers``: the only server names that may heartbeat as servers (from the kit);
    ``None`` lets any certificate with role ``server`` from the project's CA register.
    ``revoked``: names the project revoked; ``admins``: the project's admins as (name, org,
    role), ``None`` for any admin certificate of the CA. Others are refused (403) and logged.
    """

    def __init__(
        self,
        election: Election,
        store: StateStore,
        *,
        api_root: str = "/api/v1",
        servers: frozenset[str] | None = None,
        revoked: frozenset[str] = frozenset(),
        admins: frozenset[tuple[str, str, str]] | None = None,
    ) -> None:
        self.election = election
        self._revoked = revoked
        self._admins = admins
        self._store = store
        self._root = api_root.rstrip("/")
        self._servers = servers
        self._lock = threading.Lock()
        self._routes: dict[str, Callable[[Identity, bytes], Reply]] = {
            f"{self._root}/heartbeat": self._heartbeat,
            f"{self._root}/promote": self._promote,
            f"{self._root}/state": self._state,
        }

    def handle(self, path: str, identity: Identity, body: bytes) -> Reply:
        """Answer one call to ``path`` from ``identity`` (already authenticated by mutual
        TLS)."""
        handler = self._routes.get(path)
        if handler is None:
            return _error(404, f"no such call {path!r}; the calls are under {self._root}/")
        if (why := self._refusal(identity)) is not None:
            who = f"{identity.name} ({identity.role}, {identity.org})"
            log.warning("refused %s: %s: %s %s", who, path, identity.name, why)
            return _error(403, f"{identity.name} {why}")
        try:
            return handler(identity, body)
        except WireError as err:
            return _error(400, str(err))
        except ElectionRefused as err:
            return _error(err.status, str(err))

    # -- endpoints ------------------------------------------------------------------------
    def _heartbeat(self, who: Identity, body: bytes) -> Reply:
        if who.role not in HEARTBEAT_ROLES:
            return self._forbidden(who, "send heartbeats", HEARTBEAT_ROLES)
        if who.role == "server":
            beat = decode(body, ServerHeartbeat, limit=MAX_REQUEST_BYTES, what="heartbeat body")
            if beat.name != who.name:
                return _not_yours(who, beat.name)
            if self._servers is not None and who.name not in self._servers:
                return _error(
                    403,
                    f"{who.name} is not a server of this project "
                    f"(servers: {', '.join(sorted(self._servers)) or 'none'})",
                )
            return self._apply(lambda: self.election.server_heartbeat(beat))
        what = "heartbeat body"
        name = decode(body, ParticipantHeartbeat, limit=MAX_REQUEST_BYTES, what=what).name
        if name != who.name:
            return _not_yours(who, name)
        return self._apply(lambda: self.election.participant_heartbeat(who.name, who.org, who.role))

    def _promote(self, who: Identity, body: bytes) -> Reply:
        if who.role != PROMOTE_ROLE:
            return self._forbidden(who, "promote a server", frozenset({PROMOTE_ROLE}))
        name = decode(body, PromoteRequest, limit=MAX_REQUEST_BYTES, what="promote body").name
        return self._apply(lambda: self.election.promote(name, by=who.name))

    def _state(self, who: Identity, body: bytes) -> Reply:
        if who.role not in STATE_ROLES:
            return self._forbidden(who, "read the overseer's state", STATE_ROLES)
        if body:
            return _error(400, f"the state call takes no body, got {len(body)} bytes")
        return self._apply(self.election.state)

    # -- helpers --------------------------------------------------------------------------
    def _refusal(self, who: Identity) -> str | None:
        """Why the project's lists refuse ``who`` (revoked, or an unlisted admin); or None."""
        if who.name in self._revoked:
            return "is revoked in this project"
        if who.fingerprint and f"sha256:{who.fingerprint}" in self._revoked:
            return f"(certificate sha256:{who.fingerprint[:16]}…) is revoked in this project"
        admin = (who.name, who.org, who.role)
        if who.role in ADMIN_ROLES and self._admins is not None and admin not in self._admins:
            return f"({who.role}, {who.org}) is not an admin of this project"
        return None

    def _apply(self, event: Callable[[], OverseerAnswer]) -> Reply:
        with self._lock:
            answer = event()
            for promotion in self.election.take_promotions():
                log.warning(
                    "hot server is now %s (was %s), ssid %s: %s",
                    promotion.name,
                    promotion.previous or "none",
                    promotion.ssid,
                    promotion.reason,
                )
            if self.election.dirty:
                try:
                    self._store.save(self.election.persisted())
                except OSError as err:
                    log.error("cannot save the overseer's state: %s", err)
                    return _error(503, f"the overseer cannot save its state: {err}")
                self.election.mark_saved()
            return Reply(200, answer)

    @staticmethod
    def _forbidden(who: Identity, action: str, roles: frozenset[str]) -> Reply:
        return _error(
            403,
            f"{who.name} (org {who.org}) has role {who.role!r} in its certificate; "
            f"to {action} the role must be {' or '.join(sorted(roles))}",
        )


def _not_yours(who: Identity, named: str) -> Reply:
    return _error(403, f"the certificate is for {who.name!r} but the heartbeat names {named!r}")
