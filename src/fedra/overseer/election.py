"""Who the hot server is, and whether it may act: the overseer's logic, with no I/O.

The rules (times on the overseer's monotonic clock; settings in :mod:`.settings`):

0. **SSID.** The service session id is an integer that grows by at least one on every change
   of the hot server; it is also larger than any SSID a server reported (from its store),
   so fencing by SSID in shared storage keeps working after the overseer lost its state.
1. **Initial election.** While no server is hot, the first server whose heartbeat says
   ``ready`` (or ``hot``) becomes hot, under a new SSID.
2. **Lease.** The answer to a heartbeat of the hot server in state ``ready`` or ``hot``
   grants it a lease of ``lease`` seconds, counted by the server from the moment it *sent*
   that heartbeat. A server acts as hot only while it holds a lease, and steps down (stops
   serving sites and admins) when it cannot renew it in time or an answer names another
   hot server. Each grant pushes the *lease bound* to ``now + lease + lease_margin``: no
   other server gets a lease before then.
3. **Automatic promotion.** The hot server is *unavailable* when it has not heartbeated for
   ``heartbeat_timeout`` or reports ``starting`` or ``stopping``. When it is unavailable and
   the lease bound has passed, the first live standby that reports ``hot`` or ``ready``
   (in the order servers first registered) becomes hot under a new SSID.
4. **Release.** A server that reports ``stopping`` has already stopped serving: the lease
   it holds ends at once, so when it was hot a standby takes over on its next heartbeat.
5. **Promotion by an admin** names a live, ready server; it becomes hot at once (new SSID),
   but gets its lease only after the lease bound: the previous hot server, told by its next
   answer that it is no longer hot, or by its lease running out, has stopped by then.
6. **Restart.** The SSID, the hot server, the last lease holder and the known servers are
   saved (by the caller, whenever :attr:`Election.dirty`) *before* any answer that depends
   on them is sent. After a restart, the lease holder may renew at once; everyone else waits
   for a full ``lease + lease_margin``, since a lease may have been granted just before the
   restart. Servers not heard from since the restart count as seen at the restart.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from fedra.overseer.errors import ElectionRefused
from fedra.overseer.messages import (
    MAX_SSID,
    Lease,
    Name,
    OverseerAnswer,
    ParticipantStatus,
    ServerHeartbeat,
    ServerInfo,
    ServerState,
    ServerStatus,
    Ssid,
)
from fedra.overseer.settings import OverseerSettings

#: Most servers the overseer keeps track of.
MAX_SERVERS = 64
#: Most sites and admins it remembers (the least recently seen is forgotten first).
MAX_PARTICIPANTS = 10_000

_SERVING = frozenset({ServerState.READY, ServerState.HOT})


class PersistedState(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="version", tag=1
):
    """What survives a restart of the overseer: see rule 6 of :mod:`.election`.

    Saved as JSON with ``"version": 1`` (see :mod:`.store`).
    """

    ssid: Ssid | None
    hot: Name | None
    lease_holder: Name | None
    servers: tuple[ServerInfo, ...]
    #: The largest SSID a server reported (0: none).
    seen_ssid: Ssid = 0


@dataclass(frozen=True)
class Promotion:
    """A change of the hot server: who, after whom, the new SSID and why."""

    name: str
    previous: str | None
    ssid: int
    reason: str


@dataclass
class _Server:
    info: ServerInfo
    state: ServerState | None = None
    last_seen: float | None = None
    last_seen_wall: float | None = None


@dataclass
class _Participant:
    org: str
    role: str
    last_seen: float
    last_seen_wall: float


class Election:
    """The election of the hot server and its lease (rules in the module docstring).

    ``clock`` is monotonic (decisions), ``wall_clock`` gives the times shown to people; both
    are injectable for tests. ``saved`` restores a state saved before a restart.
    """

    def __init__(
        self,
        settings: OverseerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        saved: PersistedState | None = None,
    ) -> None:
        self.settings = settings or OverseerSettings()
        self._clock = clock
        self._wall = wall_clock
        self._started = clock()
        self._servers: dict[str, _Server] = {}
        self._participants: dict[str, _Participant] = {}
        self._promotions: list[Promotion] = []
        self.ssid: int | None = None
        self._seen_ssid = 0
        self.hot: str | None = None
        self.lease_holder: str | None = None
        self._lease_bound = -math.inf
        #: Whether the persisted part changed since :meth:`mark_saved`.
        self.dirty = False
        if saved is not None:
            self._restore(saved)

    # -- events ---------------------------------------------------------------------------
    def server_heartbeat(self, beat: ServerHeartbeat) -> OverseerAnswer:
        """A server's heartbeat; the answer grants a lease when rule 2 allows it."""
        now, wall = self._clock(), self._wall()
        record = self._servers.get(beat.name)
        if record is None:
            if len(self._servers) >= MAX_SERVERS:
                raise ElectionRefused(
                    f"the overseer already tracks {MAX_SERVERS} servers; not adding {beat.name}",
                    status=409,
                )
            record = self._servers[beat.name] = _Server(beat.info)
            self.dirty = True
        elif record.info != beat.info:
            record.info = beat.info
            self.dirty = True
        record.state, record.last_seen, record.last_seen_wall = beat.state, now, wall
        if beat.ssid is not None and beat.ssid > self._seen_ssid:
            self._seen_ssid = beat.ssid
            self.dirty = True
        if beat.state is ServerState.STOPPING:
            self._release(beat.name, now)
        self._evaluate(now)
        lease = None
        if beat.name == self.hot and beat.state in _SERVING:
            lease = self._grant(beat.name, now, wall)
        return self._answer(now, lease=lease)

    def participant_heartbeat(self, name: str, org: str, role: str) -> OverseerAnswer:
        """A site's or an admin's heartbeat (identity from its certificate)."""
        now, wall = self._clock(), self._wall()
        if name not in self._participants and len(self._participants) >= MAX_PARTICIPANTS:
            oldest = min(self._participants, key=lambda n: self._participants[n].last_seen)
            del self._participants[oldest]
        self._participants[name] = _Participant(org, role, now, wall)
        self._evaluate(now)
        return self._answer(now)

    def promote(self, name: str, *, by: str) -> OverseerAnswer:
        """Make server ``name`` hot now (rule 5); :class:`ElectionRefused` if it cannot be."""
        now = self._clock()
        record = self._servers.get(name)
        if record is None:
            known = ", ".join(self._servers) or "none yet"
            raise ElectionRefused(f"unknown server {name!r} (known servers: {known})", status=404)
        if name != self.hot:
            if record.last_seen is None or not self._live(record, now):
                why = "not heard from since the overseer started"
                if record.last_seen is not None:
                    why = f"silent for {now - record.last_seen:.1f} s"
                raise ElectionRefused(f"cannot promote {name}: it is {why}", status=409)
            if record.state not in _SERVING:
                state = record.state.value if record.state else "unknown"
                raise ElectionRefused(
                    f"cannot promote {name}: it reports {state!r}, not ready to serve",
                    status=409,
                )
            self._designate(name, f"promoted by {by}")
        return self._answer(now, participants=True)

    def state(self) -> OverseerAnswer:
        """The full state, participants included (for admins)."""
        now = self._clock()
        self._evaluate(now)
        return self._answer(now, participants=True)

    # -- persistence ----------------------------------------------------------------------
    def persisted(self) -> PersistedState:
        """The part that must survive a restart."""
        return PersistedState(
            ssid=self.ssid,
            hot=self.hot,
            lease_holder=self.lease_holder,
            servers=tuple(record.info for record in self._servers.values()),
            seen_ssid=self._seen_ssid,
        )

    def mark_saved(self) -> None:
        """The caller saved :meth:`persisted`: clear :attr:`dirty`."""
        self.dirty = False

    def take_promotions(self) -> list[Promotion]:
        """The promotions since the last call (for the caller to log)."""
        promotions, self._promotions = self._promotions, []
        return promotions

    # -- rules ----------------------------------------------------------------------------
    def _restore(self, saved: PersistedState) -> None:
        for info in saved.servers:
            self._servers[info.name] = _Server(info)
        self.ssid = saved.ssid
        self._seen_ssid = saved.seen_ssid
        self.hot = saved.hot if saved.hot in self._servers else None
        self.lease_holder = saved.lease_holder if saved.lease_holder in self._servers else None
        if self.lease_holder is not None:
            self._lease_bound = self._started + self.settings.lease + self.settings.lease_margin

    def _live(self, record: _Server, now: float) -> bool:
        seen = self._started if record.last_seen is None else record.last_seen
        return now - seen <= self.settings.heartbeat_timeout

    def _available(self, name: str, now: float) -> bool:
        record = self._servers[name]
        serving = record.state is None or record.state in _SERVING
        return serving and self._live(record, now)

    def _evaluate(self, now: float) -> None:
        if self.hot is not None and self._available(self.hot, now):
            return
        if now < self._lease_bound:
            return
        candidates = self._standbys(now)
        if not candidates:
            return
        if self.hot is None:
            reason = "first ready server"
        else:
            record = self._servers[self.hot]
            if record.state is ServerState.STOPPING:
                reason = f"{self.hot} is stopping"
            elif record.state is ServerState.STARTING:
                reason = f"{self.hot} is starting again"
            else:
                reason = f"{self.hot} silent for more than {self.settings.heartbeat_timeout:g} s"
        self._designate(candidates[0], reason)

    def _standbys(self, now: float) -> list[str]:
        """The servers that could become hot now (rule 3), the first one first."""
        candidates = [
            name
            for name, record in self._servers.items()
            if name != self.hot
            and record.last_seen is not None
            and record.state in _SERVING
            and self._live(record, now)
        ]
        # A server that already believes it is hot goes first (continuity), then by age.
        candidates.sort(key=lambda n: self._servers[n].state is not ServerState.HOT)
        return candidates

    def _note(self, name: str, record: _Server, now: float) -> str | None:
        """In words, what a server's status means when its state is not what it seems."""
        timeout = self.settings.heartbeat_timeout
        if self._live(record, now):
            if name == self.hot and not self._available(name, now):
                state = record.state.value if record.state else "unknown"
                return f"the hot server reports {state!r}: {self._takeover(now)}"
            if name != self.hot and record.state is ServerState.HOT:
                return (
                    f"reports 'hot' (its own view) but the hot server is {self.hot}: it "
                    "stops serving when the next answer tells it, or its lease runs out"
                )
            return None
        if record.last_seen is None:
            since = now - self._started
            text = f"not live: not heard from since the overseer started {since:.0f} s ago"
        else:
            state = record.state.value if record.state else "unknown"
            text = (
                f"not live: last heartbeat {now - record.last_seen:.1f} s ago (more than the "
                f"{timeout:g} s heartbeat timeout); {state!r} is the state it reported then"
            )
        if name == self.hot:
            text += f"; {self._takeover(now)}"
        elif record.state is ServerState.HOT and self.hot is not None:
            text += f"; the hot server is {self.hot} now"
        return text

    def _takeover(self, now: float) -> str:
        """When a standby replaces the hot server, which is unavailable (rule 3)."""
        standbys = self._standbys(now)
        if not standbys:
            return "no live, ready standby to promote: it stays the hot server until one heartbeats"
        wait = max(self._lease_bound - now, 0.0)
        return (
            f"the overseer promotes {standbys[0]} in {wait:.1f} s "
            "(once the lease it may still hold has run out)"
        )

    def _designate(self, name: str, reason: str) -> None:
        previous = self.hot
        self.hot = name
        self.ssid = min(max(self.ssid or 0, self._seen_ssid) + 1, MAX_SSID)
        self.dirty = True
        self._promotions.append(Promotion(name, previous, self.ssid, reason))

    def _grant(self, name: str, now: float, wall: float) -> Lease | None:
        if self.lease_holder != name and now < self._lease_bound:
            return None
        if self.lease_holder != name:
            self.lease_holder = name
            self.dirty = True
        self._lease_bound = now + self.settings.lease + self.settings.lease_margin
        return Lease(seconds=self.settings.lease, expires_at=_utc(wall + self.settings.lease))

    def _release(self, name: str, now: float) -> None:
        if self.lease_holder == name:
            self.lease_holder = None
            self._lease_bound = now
            self.dirty = True

    # -- answers --------------------------------------------------------------------------
    def _answer(
        self, now: float, *, lease: Lease | None = None, participants: bool = False
    ) -> OverseerAnswer:
        hot = self._servers[self.hot].info if self.hot is not None else None
        servers = tuple(
            ServerStatus(
                info=record.info,
                state=record.state,
                hot=name == self.hot,
                live=self._live(record, now),
                last_seen=None if record.last_seen_wall is None else _utc(record.last_seen_wall),
                age=None if record.last_seen is None else round(now - record.last_seen, 3),
                note=self._note(name, record, now) if participants else None,
            )
            for name, record in self._servers.items()
        )
        people: tuple[ParticipantStatus, ...] = ()
        if participants:
            people = tuple(
                ParticipantStatus(
                    name=name,
                    org=p.org,
                    role=p.role,
                    last_seen=_utc(p.last_seen_wall),
                    age=round(now - p.last_seen, 3),
                )
                for name, p in sorted(self._participants.items())
            )
        return OverseerAnswer(
            ssid=self.ssid,
            hot=hot,
            servers=servers,
            heartbeat_interval=self.settings.heartbeat_interval,
            heartbeat_timeout=self.settings.heartbeat_timeout,
            lease=lease,
            participants=people,
        )


def _utc(wall: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall, dt.UTC)
