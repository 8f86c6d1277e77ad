"""What travels between the overseer and its clients, as frozen msgspec structs, and its JSON.

Requests (JSON objects; unknown keys are refused)::

    heartbeat from a server   ServerHeartbeat       {"name", "host", "fl_port", "admin_port",
                                                     "state", "ssid"?}
    heartbeat from others     ParticipantHeartbeat  {"name"}
    promote                   PromoteRequest        {"name"}

Answer (every call), :class:`OverseerAnswer`::

    {"ssid": int | null, "hot": {"name", "host", "fl_port", "admin_port"} | null,
     "servers": [{"info": {"name", "host", "fl_port", "admin_port"}, "state", "hot",
                  "live", "last_seen", "age", "note"?}],             (note: state only)
     "heartbeat_interval": s, "heartbeat_timeout": s,
     "lease": {"seconds", "expires_at"} | null,          (only to the hot server)
     "participants": [{"name", "org", "role", "last_seen", "age"}]}   (state only)

Every field's type and range is declared on the struct (``msgspec.Meta``); decoding checks
them and the size of the body, and raises :class:`fedra.core.WireError` naming the field
(``... - at `$.servers[0].fl_port```). Nothing is ever evaluated or looked up by name. A
single parser reads each body, so a key given twice (the last one counts) cannot make two
readers disagree.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, TypeVar

import msgspec

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
#: Most seconds a duration on the wire may say (about 30 years).
MAX_SECONDS = 1e9

#: A participant name: 1-64 characters, not all blank, no control characters.
Name = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=NAME_MAX, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f]+$"),
]
#: A host name or address: no blanks, control characters or URL delimiters.
Host = Annotated[
    str, msgspec.Meta(min_length=1, max_length=HOST_MAX, pattern=r"^[^\s\x00-\x1f\x7f/?#@]+$")
]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Ssid = Annotated[int, msgspec.Meta(ge=0, le=MAX_SSID)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_SECONDS)]
#: An ISO 8601 (RFC 3339) time with a UTC offset.
Time = Annotated[dt.datetime, msgspec.Meta(tz=True)]
#: A sentence for people (why a server's state is not what it seems).
Note = Annotated[str, msgspec.Meta(max_length=1000)]

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


class ServerInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a server is: sites connect to ``host:fl_port``, admins to ``host:admin_port``."""

    name: Name
    host: Host
    fl_port: Port
    admin_port: Port

    @property
    def address(self) -> str:
        """``host:fl_port:admin_port``, as logs show it."""
        return f"{self.host}:{self.fl_port}:{self.admin_port}"


class ServerHeartbeat(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A server's heartbeat: where it listens, its own state and, optionally, the largest
    SSID it has seen (its job store's ``current_ssid()``): the overseer's next SSID is
    larger, even when the overseer lost its own state.
    """

    name: Name
    host: Host
    fl_port: Port
    admin_port: Port
    state: ServerState
    ssid: Ssid | None = None

    @property
    def info(self) -> ServerInfo:
        """The server's address part."""
        return ServerInfo(self.name, self.host, self.fl_port, self.admin_port)


class ParticipantHeartbeat(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A site's or an admin's heartbeat: only its name (the rest is in its certificate)."""

    name: Name


class PromoteRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An admin's request to make server ``name`` hot."""

    name: Name


class ServerStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A server as the overseer sees it.

    ``state`` is what the server said of itself in its last heartbeat (``None``, as
    ``last_seen``, for a server known from the saved state but not heard from since the
    overseer started): a server that died says nothing more, so a dead hot server still
    shows ``"hot"``. ``live`` is the overseer's view (heard from within the heartbeat
    timeout). ``note``, in the full state an admin asks for (``fedra overseer status``)
    only, says in words what a state that is not what it seems means: not live since when,
    and whether and when the overseer promotes a standby.
    """

    info: ServerInfo
    state: ServerState | None
    hot: bool
    live: bool
    last_seen: Time | None
    age: Seconds | None
    note: Note | None = None


class ParticipantStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A site or admin that heartbeats, with the org and role of its certificate."""

    name: Name
    org: Name
    role: Name
    last_seen: Time
    age: Seconds


class Lease(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The hot server's right to act, granted in the answer to its heartbeat.

    ``seconds`` counts from the moment the server *sent* that heartbeat; ``deadline`` is that
    moment plus ``seconds`` on the receiver's :func:`time.monotonic` clock: set by
    :class:`fedra.overseer.OverseerClient` (which overwrites whatever came with the answer),
    ``None`` elsewhere and never sent. ``expires_at`` is the overseer's wall-clock view, for
    display only.
    """

    seconds: Seconds
    expires_at: Time
    deadline: float | None = None


class OverseerAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The overseer's answer: the service session, the hot server, every server.

    ``ssid`` (the service session id) is an integer that grows on every promotion: the hot
    server fences its writes to shared storage with it, and a site or admin that sees it
    change reconnects to ``hot``. ``lease`` is set only in the answer to the hot server's
    own heartbeat, and only when it may act.
    """

    ssid: Ssid | None
    hot: ServerInfo | None
    servers: tuple[ServerStatus, ...]
    heartbeat_interval: Seconds
    heartbeat_timeout: Seconds
    lease: Lease | None = None
    participants: tuple[ParticipantStatus, ...] = ()

    def holds_lease(self, name: str) -> bool:
        """Whether this answer makes server ``name`` the hot server with a lease."""
        return self.hot is not None and self.hot.name == name and self.lease is not None


_ENCODER = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """Compact UTF-8 JSON bytes of ``message``."""
    return _ENCODER.encode(message)


def decode(body: bytes, kind: type[T], *, limit: int, what: str) -> T:
    """The ``kind`` in the JSON ``body``; :class:`WireError` naming the field otherwise.

    Refuses bodies over ``limit`` bytes before reading them, invalid UTF-8 or JSON,
    NaN/Infinity, unknown keys, and any value of the wrong type or out of its range.
    """
    if len(body) > limit:
        raise WireError(f"{what} is {len(body)} bytes, more than the limit of {limit}")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as err:
        raise WireError(f"{what}: {err}") from None
    except msgspec.DecodeError as err:
        raise WireError(f"{what} is not valid JSON: {err}") from None


def answer_to_json(answer: OverseerAnswer) -> bytes:
    """The JSON body of an answer (what the overseer sends; ``lease.deadline`` is left out)."""
    if answer.lease is not None and answer.lease.deadline is not None:
        answer = msgspec.structs.replace(
            answer, lease=msgspec.structs.replace(answer.lease, deadline=None)
        )
    return encode(answer)


def answer_from_json(body: bytes) -> OverseerAnswer:
    """An answer from its JSON body (as a client reads it)."""
    return decode(body, OverseerAnswer, limit=MAX_ANSWER_BYTES, what="the overseer's answer")
