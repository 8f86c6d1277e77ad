"""The overseer: which of several servers is hot, for high availability.

Servers, sites and admins heartbeat to the overseer over HTTPS with mutual TLS
(``POST /api/v1/heartbeat``); the answer names the hot server, every server's state and the
service session id (SSID), which changes on every promotion. The hot server acts only under
a lease renewed by its heartbeats; when it falls silent, a live standby is promoted once its
lease has surely run out. State survives a restart of the overseer. See ``docs/ha.md``.
"""

from fedra.overseer.api import OverseerApi, Reply
from fedra.overseer.client import (
    DEFAULT_TIMEOUT,
    OverseerClient,
    client_context,
    overseer_url,
)
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
    ServerHeartbeat,
    ServerInfo,
    ServerState,
    ServerStatus,
    answer_from_json,
    answer_to_json,
)
from fedra.overseer.process import serve_kit
from fedra.overseer.service import MAX_CONNECTIONS, REQUEST_TIMEOUT, OverseerService
from fedra.overseer.settings import SETTING_KEYS, OverseerSettings
from fedra.overseer.store import (
    STATE_FILE,
    JsonStateFile,
    MemoryStateStore,
    StateStore,
    state_from_json,
    state_to_json,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "LOCAL_FILE",
    "MAX_ANSWER_BYTES",
    "MAX_CONNECTIONS",
    "MAX_PARTICIPANTS",
    "MAX_REQUEST_BYTES",
    "MAX_SERVERS",
    "MAX_SSID",
    "OVERSEER_FILE",
    "REQUEST_TIMEOUT",
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
    "OverseerError",
    "OverseerKit",
    "OverseerRefused",
    "OverseerService",
    "OverseerSettings",
    "OverseerUnavailable",
    "ParticipantHeartbeat",
    "ParticipantStatus",
    "PersistedState",
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
    "client_context",
    "client_for_kit",
    "overseer_url",
    "serve_kit",
    "state_from_json",
    "state_to_json",
]
