"""The overseer: which of several servers is hot, for high availability.

Servers, sites and admins heartbeat to the overseer over gRPC with mutual TLS (the unary
call ``/api/v1/heartbeat``, JSON bodies; see :mod:`.wire`); the answer names the hot server,
every server's state and the service session id (SSID), which changes on every promotion.
The hot server acts only under a lease renewed by its heartbeats; when it falls silent, a
live standby is promoted once its lease has surely run out. State survives a restart of the
overseer. See ``docs/ha.md``.
"""

from fedra.overseer.api import OverseerApi, Reply
from fedra.overseer.client import DEFAULT_TIMEOUT, OverseerClient, OverseerEntry, overseer_url
from fedra.overseer.election import (
    MAX_PARTICIPANTS,
    MAX_SERVERS,
    Election,
    PersistedState,
    Promotion,
)
from fedra.overseer.errors import (
    ElectionRefused,
    OverseerError,
    OverseerRefused,
    OverseerUnavailable,
    StateFileError,
)
from fedra.overseer.kit import LOCAL_FILE, OVERSEER_FILE, OverseerKit, client_for_kit
from fedra.overseer.messages import (
    MAX_ANSWER_BYTES,
    MAX_REQUEST_BYTES,
    MAX_SSID,
    Lease,
    OverseerAnswer,
    ParticipantHeartbeat,
    ParticipantStatus,
    PromoteRequest,
    ServerHeartbeat,
    ServerInfo,
    ServerState,
    ServerStatus,
    answer_from_json,
    answer_to_json,
)
from fedra.overseer.process import serve_kit
from fedra.overseer.service import HANDSHAKE_TIMEOUT, MAX_CALLS, OverseerService
from fedra.overseer.settings import SETTING_KEYS, OverseerSettings
from fedra.overseer.statefile import (
    STATE_FILE,
    JsonStateFile,
    MemoryStateStore,
    StateStore,
    state_from_json,
    state_to_json,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "LOCAL_FILE",
    "MAX_ANSWER_BYTES",
    "MAX_CALLS",
    "MAX_PARTICIPANTS",
    "MAX_REQUEST_BYTES",
    "MAX_SERVERS",
    "MAX_SSID",
    "OVERSEER_FILE",
    "SETTING_KEYS",
    "STATE_FILE",
    "Election",
    "ElectionRefused",
    "JsonStateFile",
    "Lease",
    "MemoryStateStore",
    "OverseerAnswer",
    "OverseerApi",
    "OverseerClient",
    "OverseerEntry",
    "OverseerError",
    "OverseerKit",
    "OverseerRefused",
    "OverseerService",
    "OverseerSettings",
    "OverseerUnavailable",
    "ParticipantHeartbeat",
    "ParticipantStatus",
    "PersistedState",
    "PromoteRequest",
    "Promotion",
    "Reply",
    "ServerHeartbeat",
    "ServerInfo",
    "ServerState",
    "ServerStatus",
    "StateFileError",
    "StateStore",
    "answer_from_json",
    "answer_to_json",
    "client_for_kit",
    "overseer_url",
    "serve_kit",
    "state_from_json",
    "state_to_json",
]
