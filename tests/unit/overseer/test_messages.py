"""The overseer's JSON: round trips, and strict refusal of anything malformed."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from fedra.core import ConfigError, WireError
from fedra.overseer import (
    Lease,
    OverseerAnswer,
    OverseerSettings,
    ParticipantStatus,
    ServerInfo,
    ServerState,
    ServerStatus,
    answer_from_json,
    answer_to_json,
)
from fedra.overseer.messages import (
    MAX_REQUEST_BYTES,
    decode,
    heartbeat_to_json,
    participant_heartbeat_from_json,
    promote_from_json,
    server_heartbeat_from_json,
)
from tests.unit.overseer.conftest import beat

T0 = dt.datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


def test_answer_round_trip() -> None:
    s1 = ServerInfo("s1", "host-1", 8002, 8003)
    answer = OverseerAnswer(
        ssid=7,
        hot=s1,
        servers=(
            ServerStatus(s1, ServerState.HOT, True, True, T0, 0.5),
            ServerStatus(ServerInfo("s2", "10.0.0.2", 9002, 9003), None, False, False, None, None),
        ),
        heartbeat_interval=2.0,
        heartbeat_timeout=10.0,
        lease=Lease(8.0, T0),
        participants=(ParticipantStatus("site-1", "org", "client", T0, 1.25),),
    )
    data = json.loads(json.dumps(answer_to_json(answer)))
    assert data["hot"] == {"name": "s1", "host": "host-1", "fl_port": 8002, "admin_port": 8003}
    assert data["servers"][0]["last_seen"] == "2026-05-01T12:00:00.250+00:00"
    assert answer_from_json(data) == answer


def test_server_heartbeat_round_trip() -> None:
    for ssid in (None, 0, 12):
        sent = beat("s1", ServerState.STARTING, ssid=ssid)
        data = heartbeat_to_json(sent)
        assert ("ssid" in data) == (ssid is not None)
        assert server_heartbeat_from_json(data) == sent


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "must be a JSON object, got list"),
        (b"{", "not valid JSON"),
        (b"\xff{}", "not UTF-8"),
        (b'{"name": "a", "name": "b"}', "duplicate key 'name'"),
        (b'{"x": NaN}', "NaN is not allowed"),
        (b"[" * 100_000, "nested too deeply|not valid JSON"),
    ],
)
def test_decode_refuses_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode(body, limit=1 << 20, what="body")


def test_decode_refuses_oversized_bodies() -> None:
    body = json.dumps({"name": "x" * MAX_REQUEST_BYTES}).encode()
    with pytest.raises(WireError, match=f"more than the limit of {MAX_REQUEST_BYTES}"):
        decode(body, limit=MAX_REQUEST_BYTES, what="heartbeat body")


GOOD = {"name": "s1", "host": "s1.example.org", "fl_port": 8002, "admin_port": 8003}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": "leader"}, "state: expected one of starting, ready, hot, stopping"),
        ({"state": "ready", "fl_port": 0}, "fl_port: expected an integer port 1-65535"),
        ({"state": "ready", "fl_port": 70000}, "fl_port: expected an integer port"),
        ({"state": "ready", "fl_port": True}, "fl_port: expected an integer port"),
        ({"state": "ready", "admin_port": "8003"}, "admin_port: expected an integer port"),
        ({"state": "ready", "name": ""}, "name: expected a name"),
        ({"state": "ready", "name": "a\nb"}, "name: expected a name"),
        ({"state": "ready", "name": "x" * 65}, "name: expected a name"),
        ({"state": "ready", "host": "a b"}, "host: expected a host name"),
        ({"state": "ready", "host": "h/evil"}, "host: expected a host name"),
        ({"state": "ready", "ssid": -1}, "ssid: expected a service session id"),
        ({"state": "ready", "ssid": 2**63}, "ssid: expected a service session id"),
        ({"state": "ready", "extra": 1}, "unknown key 'extra'"),
        ({}, "missing key 'state'"),
    ],
)
def test_server_heartbeat_is_strict(change: dict[str, object], message: str) -> None:
    with pytest.raises(WireError, match=message):
        server_heartbeat_from_json({**GOOD, **change})


def test_participant_and_promote_bodies_are_strict() -> None:
    assert participant_heartbeat_from_json({"name": "site-1"}).name == "site-1"
    assert promote_from_json({"name": "s2"}) == "s2"
    with pytest.raises(WireError, match=r"unknown key 'role'"):
        participant_heartbeat_from_json({"name": "site-1", "role": "project_admin"})
    with pytest.raises(WireError, match=r"missing key 'name'"):
        promote_from_json({})
    with pytest.raises(WireError, match=r"name: expected a name"):
        promote_from_json({"name": 3})


def test_answer_from_json_refuses_a_malformed_answer() -> None:
    good = answer_to_json(
        OverseerAnswer(ssid=None, hot=None, servers=(), heartbeat_interval=2, heartbeat_timeout=10)
    )
    assert answer_from_json(good).ssid is None
    with pytest.raises(WireError, match=r"answer.servers: expected a JSON list"):
        answer_from_json({**good, "servers": {}})
    with pytest.raises(WireError, match=r"answer.servers\[0\]: expected a JSON object"):
        answer_from_json({**good, "servers": [1]})
    with pytest.raises(WireError, match=r"heartbeat_interval: expected a number"):
        answer_from_json({**good, "heartbeat_interval": "2"})
    with pytest.raises(WireError, match=r"expires_at: expected an ISO 8601 time with a UTC"):
        answer_from_json({**good, "lease": {"seconds": 1, "expires_at": "2026-01-01T00:00:00"}})


def test_settings_are_validated() -> None:
    s = OverseerSettings()
    assert (s.heartbeat_interval, s.heartbeat_timeout, s.lease, s.lease_margin) == (2, 10, 8, 2)
    assert s.promotion_delay == 10
    assert OverseerSettings(lease=20, lease_margin=5).promotion_delay == 25
    for bad, message in [
        ({"heartbeat_interval": 0}, "heartbeat_interval: expected a positive number"),
        ({"lease": float("nan")}, "lease: expected a positive number"),
        ({"lease_margin": -1}, "lease_margin: expected a positive number"),
        ({"heartbeat_timeout": "10"}, "heartbeat_timeout: expected a number"),
        ({"heartbeat_interval": 10}, "heartbeat_timeout .10. must exceed heartbeat_interval"),
        ({"heartbeat_interval": 9, "heartbeat_timeout": 20}, "lease .8. must exceed"),
    ]:
        with pytest.raises(ConfigError, match=message):
            OverseerSettings(**bad)  # type: ignore[arg-type]
    assert OverseerSettings(lease_margin=0).lease_margin == 0
    merged = OverseerSettings.from_mapping({"lease": 4, "other": 1}, where="f.json")
    assert merged == OverseerSettings(lease=4)
    with pytest.raises(ConfigError, match=r"^f.json: overseer setting lease"):
        OverseerSettings.from_mapping({"lease": -4}, where="f.json")
