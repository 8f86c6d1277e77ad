"""What travels between the overseer and its clients, and the one JSON conversion of it.

Requests (``POST`` bodies, JSON objects; unknown keys are refused)::

    heartbeat from a server   {"name", "host", "fl_port", "admin_port", "state", "ssid"?}
    heartbeat from others     {"name"}
    promote                   {"name"}

Answer (every endpoint)::

    {"ssid": int | null, "hot": {"name", "host", "fl_port", "admin_port"} | null,
     "servers": [{"name", "host", "fl_port", "admin_port", "state", "hot", "live",
                  "last_seen", "age"}],
     "heartbeat_interval": s, "heartbeat_timeout": s,
     "lease": {"seconds", "expires_at"} | null,          (only to the hot server)
     "participants": [{"name", "org", "role", "last_seen", "age"}]}   (state only)

Decoding checks types, ranges and sizes and raises :class:`fedra.core.WireError` naming the
key; nothing is ever evaluated or looked up by name.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from fedra.core import WireError

#: Longest participant name (the CN of a certificate).
NAME_MAX = 64
#: Longest host name or address.
HOST_MAX = 253
#: Largest request body the overseer reads.
MAX_REQUEST_BYTES = 16 * 1024
#: Largest answer a client reads.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: Largest service session id (a signed 64-bit integer, as SQL stores keep it).
MAX_SSID = 2**63 - 1

T = TypeVar("T")


class ServerState(StrEnum):
    """What a server reports about itself in its heartbeat.

    ``starting``: not yet able to serve; ``ready``: able to serve, as standby or hot;
    ``hot``: serving under a lease; ``stopping``: has stopped serving and is going away
    (releases the lease at once).
    """

    STARTING = "starting"
    READY = "ready"
    HOT = "hot"
    STOPPING = "stopping"


@dataclass(frozen=True)
class ServerInfo:
    """Where a server is: sites connect to ``host:fl_port``, admins to ``host:admin_port``."""

    name: str
    host: str
    fl_port: int
    admin_port: int

    @property
    def address(self) -> str:
        """``host:fl_port:admin_port``, as logs show it."""
        return f"{self.host}:{self.fl_port}:{self.admin_port}"


@dataclass(frozen=True)
class ServerHeartbeat:
    """A server's heartbeat: where it listens, its own state and, optionally, the largest
    SSID it has seen (its job store's ``current_ssid()``): the overseer's next SSID is
    larger, even when the overseer lost its own state.
    """

    name: str
    host: str
    fl_port: int
    admin_port: int
    state: ServerState
    ssid: int | None = None

    @property
    def info(self) -> ServerInfo:
        """The server's address part."""
        return ServerInfo(self.name, self.host, self.fl_port, self.admin_port)


@dataclass(frozen=True)
class ParticipantHeartbeat:
    """A site's or an admin's heartbeat: only its name (the rest is in its certificate)."""

    name: str


@dataclass(frozen=True)
class ServerStatus:
    """A server as the overseer sees it.

    ``state`` is ``None`` and ``last_seen`` is ``None`` for a server known from the saved
    state but not heard from since the overseer started.
    """

    info: ServerInfo
    state: ServerState | None
    hot: bool
    live: bool
    last_seen: dt.datetime | None
    age: float | None


@dataclass(frozen=True)
class ParticipantStatus:
    """A site or admin that heartbeats, with the org and role of its certificate."""

    name: str
    org: str
    role: str
    last_seen: dt.datetime
    age: float


@dataclass(frozen=True)
class Lease:
    """The hot server's right to act, granted in the answer to its heartbeat.

    ``seconds`` counts from the moment the server *sent* that heartbeat; ``deadline`` is that
    moment plus ``seconds`` on the receiver's :func:`time.monotonic` clock (set by
    :class:`fedra.overseer.OverseerClient`, ``None`` elsewhere). ``expires_at`` is the
    overseer's wall-clock view, for display only.
    """

    seconds: float
    expires_at: dt.datetime
    deadline: float | None = None


@dataclass(frozen=True)
class OverseerAnswer:
    """The overseer's answer: the service session, the hot server, every server.

    ``ssid`` (the service session id) is an integer that grows on every promotion: the hot
    server fences its writes to shared storage with it, and a site or admin that sees it
    change reconnects to ``hot``. ``lease`` is set only in the answer to the hot server's
    own heartbeat, and only when it may act.
    """

    ssid: int | None
    hot: ServerInfo | None
    servers: tuple[ServerStatus, ...]
    heartbeat_interval: float
    heartbeat_timeout: float
    lease: Lease | None = None
    participants: tuple[ParticipantStatus, ...] = ()

    def holds_lease(self, name: str) -> bool:
        """Whether this answer makes server ``name`` the hot server with a lease."""
        return self.hot is not None and self.hot.name == name and self.lease is not None


# -- encoding ---------------------------------------------------------------------------


def heartbeat_to_json(beat: ServerHeartbeat | ParticipantHeartbeat) -> dict[str, Any]:
    """The JSON body of a heartbeat."""
    if isinstance(beat, ServerHeartbeat):
        data: dict[str, Any] = {
            "name": beat.name,
            "host": beat.host,
            "fl_port": beat.fl_port,
            "admin_port": beat.admin_port,
            "state": beat.state.value,
        }
        if beat.ssid is not None:
            data["ssid"] = beat.ssid
        return data
    return {"name": beat.name}


def answer_to_json(answer: OverseerAnswer) -> dict[str, Any]:
    """The JSON body of an answer."""
    return {
        "ssid": answer.ssid,
        "hot": None if answer.hot is None else _info_json(answer.hot),
        "servers": [
            {
                **_info_json(s.info),
                "state": None if s.state is None else s.state.value,
                "hot": s.hot,
                "live": s.live,
                "last_seen": _time_json(s.last_seen),
                "age": s.age,
            }
            for s in answer.servers
        ],
        "heartbeat_interval": answer.heartbeat_interval,
        "heartbeat_timeout": answer.heartbeat_timeout,
        "lease": None
        if answer.lease is None
        else {"seconds": answer.lease.seconds, "expires_at": _time_json(answer.lease.expires_at)},
        "participants": [
            {
                "name": p.name,
                "org": p.org,
                "role": p.role,
                "last_seen": _time_json(p.last_seen),
                "age": p.age,
            }
            for p in answer.participants
        ],
    }


def encode(data: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON bytes of ``data``."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")


# -- decoding ---------------------------------------------------------------------------


def decode(body: bytes, *, limit: int, what: str) -> dict[str, Any]:
    """The JSON object in ``body``; :class:`WireError` for anything else.

    Refuses bodies over ``limit`` bytes, invalid UTF-8, duplicate keys, NaN/Infinity and
    nesting too deep to parse.
    """
    if len(body) > limit:
        raise WireError(f"{what} is {len(body)} bytes, more than the limit of {limit}")
    try:
        data = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError as err:
        raise WireError(f"{what} is not UTF-8: {err.reason}") from err
    except json.JSONDecodeError as err:
        raise WireError(f"{what} is not valid JSON: {err.msg} at line {err.lineno}") from err
    except RecursionError as err:
        raise WireError(f"{what} is nested too deeply") from err
    if not isinstance(data, dict):
        raise WireError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def server_heartbeat_from_json(data: dict[str, Any]) -> ServerHeartbeat:
    """A server's heartbeat from its JSON body."""
    what = "server heartbeat"
    _only(data, {"name", "host", "fl_port", "admin_port", "state", "ssid"}, what)
    info = _info(data, what)
    state = _required(data, "state", _state, what)
    ssid = _required(data, "ssid", _optional(_ssid), what) if "ssid" in data else None
    return ServerHeartbeat(info.name, info.host, info.fl_port, info.admin_port, state, ssid)


def server_info_from_json(data: dict[str, Any], what: str = "server") -> ServerInfo:
    """A server's address part (exactly name, host, fl_port, admin_port) from JSON."""
    return _info(data, what, strict=True)


def participant_heartbeat_from_json(data: dict[str, Any]) -> ParticipantHeartbeat:
    """A site's or an admin's heartbeat from its JSON body."""
    _only(data, {"name"}, "heartbeat")
    return ParticipantHeartbeat(_required(data, "name", _name, "heartbeat"))


def promote_from_json(data: dict[str, Any]) -> str:
    """The server name a promote request names."""
    _only(data, {"name"}, "promote request")
    return _required(data, "name", _name, "promote request")


def answer_from_json(data: dict[str, Any]) -> OverseerAnswer:
    """An answer from its JSON body (as a client reads it)."""
    what = "answer"
    _only(
        data,
        {
            "ssid",
            "hot",
            "servers",
            "heartbeat_interval",
            "heartbeat_timeout",
            "lease",
            "participants",
        },
        what,
    )
    ssid = _required(data, "ssid", _optional(_ssid), what)
    hot_data = _required(data, "hot", _optional(_object), what)
    hot = None if hot_data is None else _info(hot_data, "answer.hot", strict=True)
    servers = tuple(
        _server_status(item, f"answer.servers[{i}]")
        for i, item in enumerate(_required(data, "servers", _list, what))
    )
    lease_data = _required(data, "lease", _optional(_object), what)
    lease = None
    if lease_data is not None:
        _only(lease_data, {"seconds", "expires_at"}, "answer.lease")
        lease = Lease(
            seconds=_required(lease_data, "seconds", _seconds, "answer.lease"),
            expires_at=_required(lease_data, "expires_at", _time, "answer.lease"),
        )
    participants = tuple(
        _participant_status(item, f"answer.participants[{i}]")
        for i, item in enumerate(_required(data, "participants", _list, what))
    )
    return OverseerAnswer(
        ssid=ssid,
        hot=hot,
        servers=servers,
        heartbeat_interval=_required(data, "heartbeat_interval", _seconds, what),
        heartbeat_timeout=_required(data, "heartbeat_timeout", _seconds, what),
        lease=lease,
        participants=participants,
    )


# -- helpers ----------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise WireError(f"duplicate key {key!r} in JSON object")
        data[key] = value
    return data


def _no_constant(token: str) -> Any:
    raise WireError(f"{token} is not allowed in JSON here")


def _only(data: dict[str, Any], keys: set[str], what: str) -> None:
    extra = sorted(set(data) - keys)
    if extra:
        raise WireError(f"{what}: unknown key {extra[0]!r} (expected {', '.join(sorted(keys))})")


def _required(data: dict[str, Any], key: str, check: Callable[[Any], T], what: str) -> T:
    if key not in data:
        raise WireError(f"{what}: missing key {key!r}")
    try:
        return check(data[key])
    except _Invalid as err:
        raise WireError(f"{what}.{key}: expected {err.expected}, got {_show(data[key])}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _name(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > NAME_MAX
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise _Invalid(f"a name of 1-{NAME_MAX} printable characters")
    return value


def _host(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > HOST_MAX
        or any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c in "/?#@" for c in value)
    ):
        raise _Invalid(f"a host name or address of 1-{HOST_MAX} characters")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Invalid("an integer port 1-65535")
    return value


def _ssid(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SSID:
        raise _Invalid(f"a service session id (an integer 0-{MAX_SSID})")
    return value


def _state(value: Any) -> ServerState:
    try:
        return ServerState(value)
    except ValueError:
        raise _Invalid("one of " + ", ".join(s.value for s in ServerState)) from None


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid("a number of seconds")
    if value < 0:
        raise _Invalid("a non-negative number of seconds")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid("a JSON object")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid("a JSON list")
    return value


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _Invalid("an ISO 8601 time")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid("an ISO 8601 time") from None
    if when.tzinfo is None:
        raise _Invalid("an ISO 8601 time with a UTC offset")
    return when


def _optional(check: Callable[[Any], T]) -> Callable[[Any], T | None]:
    def optional(value: Any) -> T | None:
        return None if value is None else check(value)

    return optional


def _info(data: dict[str, Any], what: str, *, strict: bool = False) -> ServerInfo:
    if strict:
        _only(data, {"name", "host", "fl_port", "admin_port"}, what)
    return ServerInfo(
        name=_required(data, "name", _name, what),
        host=_required(data, "host", _host, what),
        fl_port=_required(data, "fl_port", _port, what),
        admin_port=_required(data, "admin_port", _port, what),
    )


def _info_json(info: ServerInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "host": info.host,
        "fl_port": info.fl_port,
        "admin_port": info.admin_port,
    }


def _time_json(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="milliseconds")


def _element(item: Any, what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise WireError(f"{what}: expected a JSON object, got {_show(item)}")
    return item


def _server_status(item: Any, what: str) -> ServerStatus:
    data = _element(item, what)
    _only(
        data,
        {"name", "host", "fl_port", "admin_port", "state", "hot", "live", "last_seen", "age"},
        what,
    )
    return ServerStatus(
        info=_info(data, what),
        state=_required(data, "state", _optional(_state), what),
        hot=_required(data, "hot", _boolean, what),
        live=_required(data, "live", _boolean, what),
        last_seen=_required(data, "last_seen", _optional(_time), what),
        age=_required(data, "age", _optional(_seconds), what),
    )


def _participant_status(item: Any, what: str) -> ParticipantStatus:
    data = _element(item, what)
    _only(data, {"name", "org", "role", "last_seen", "age"}, what)
    return ParticipantStatus(
        name=_required(data, "name", _name, what),
        org=_required(data, "org", _name, what),
        role=_required(data, "role", _name, what),
        last_seen=_required(data, "last_seen", _time, what),
        age=_required(data, "age", _seconds, what),
    )
