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
from fedra.overseer.messages import MAX_REQUEST_BYTES, decode, encode
from tests.unit.overseer.conftest import beat

T0 = dt.datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


def server_beat(body: bytes) -> ServerHeartbeat:
    return decode(body, ServerHeartbeat, limit=MAX_REQUEST_BYTES, what="heartbeat body")


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
    data = json.loads(answer_to_json(answer))
    assert data["hot"] == {"name": "s1", "host": "host-1", "fl_port": 8002, "admin_port": 8003}
    assert data["servers"][0]["last_seen"] == "2026-05-01T12:00:00.250000Z"
    assert data["lease"] == {"seconds": 8.0, "expires_at": "2026-05-01T12:00:00.250000Z"}
    assert data["servers"][1]["info"]["host"] == "10.0.0.2"
    assert answer_from_json(answer_to_json(answer)) == answer


def test_the_local_deadline_of_a_lease_is_never_sent() -> None:
    lease = Lease(8.0, T0, deadline=123.0)
    answer = OverseerAnswer(None, None, (), 2.0, 10.0, lease=lease)
    assert b"deadline" not in answer_to_json(answer)


def test_server_heartbeat_round_trip() -> None:
    for ssid in (None, 0, 12):
        sent = beat("s1", ServerState.STARTING, ssid=ssid)
        data = encode(sent)
        assert (b'"ssid"' in data) == (ssid is not None)
        assert server_beat(data) == sent


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "Expected `object`, got `array`"),
        (b"{", "not valid JSON"),
        (b"\xff{}", "not valid JSON"),
        (b'{"name": NaN}', "not valid JSON"),
        (b"[" * 100_000, "Expected `object`, got `array`"),
    ],
)
def test_decode_refuses_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode(body, ParticipantHeartbeat, limit=1 << 20, what="body")


def test_decode_refuses_oversized_bodies() -> None:
    body = json.dumps({"name": "x" * MAX_REQUEST_BYTES}).encode()
    with pytest.raises(WireError, match=f"more than the limit of {MAX_REQUEST_BYTES}"):
        server_beat(body)


GOOD = {"name": "s1", "host": "s1.example.org", "fl_port": 8002, "admin_port": 8003}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": "leader"}, r"Invalid enum value 'leader' - at `\$.state`"),
        ({"state": "ready", "fl_port": 0}, r"Expected `int` >= 1 - at `\$.fl_port`"),
        ({"state": "ready", "fl_port": 70000}, r"<= 65535 - at `\$.fl_port`"),
        ({"state": "ready", "fl_port": True}, r"got `bool` - at `\$.fl_port`"),
        ({"state": "ready", "admin_port": "8003"}, r"got `str` - at `\$.admin_port`"),
        ({"state": "ready", "name": ""}, r"length >= 1 - at `\$.name`"),
        ({"state": "ready", "name": "a\nb"}, r"matching regex .* - at `\$.name`"),
        ({"state": "ready", "name": "  "}, r"matching regex .* - at `\$.name`"),
        ({"state": "ready", "name": "x" * 65}, r"length <= 64 - at `\$.name`"),
        ({"state": "ready", "host": "a b"}, r"at `\$.host`"),
        ({"state": "ready", "host": "h/evil"}, r"at `\$.host`"),
        ({"state": "ready", "ssid": -1}, r">= 0 - at `\$.ssid`"),
        ({"state": "ready", "ssid": 2**63}, r"at `\$.ssid`"),
        ({"state": "ready", "extra": 1}, "unknown field `extra`"),
        ({}, "missing required field `state`"),
    ],
)
def test_server_heartbeat_is_strict(change: dict[str, object], message: str) -> None:
    with pytest.raises(WireError, match=r"^heartbeat body: .*" + message):
        server_beat(json.dumps({**GOOD, **change}).encode())


def test_participant_and_promote_bodies_are_strict() -> None:
    def promote(body: bytes) -> PromoteRequest:
        return decode(body, PromoteRequest, limit=MAX_REQUEST_BYTES, what="promote body")

    body = b'{"name":"site-1"}'
    assert decode(body, ParticipantHeartbeat, limit=99, what="x").name == "site-1"
    assert promote(b'{"name":"s2"}').name == "s2"
    with pytest.raises(WireError, match=r"unknown field `role`"):
        decode(
            b'{"name":"site-1","role":"project_admin"}', ParticipantHeartbeat, limit=99, what="x"
        )
    with pytest.raises(WireError, match=r"missing required field `name`"):
        promote(b"{}")
    with pytest.raises(WireError, match=r"promote body: Expected `str`, got `int` - at `\$.name`"):
        promote(b'{"name":3}')


def test_answer_from_json_refuses_a_malformed_answer() -> None:
    good = json.loads(answer_to_json(OverseerAnswer(None, None, (), 2, 10)))
    assert answer_from_json(json.dumps(good).encode()).ssid is None

    def bad(**change: object) -> bytes:
        return json.dumps({**good, **change}).encode()

    with pytest.raises(WireError, match=r"Expected `array`, got `object` - at `\$.servers`"):
        answer_from_json(bad(servers={}))
    with pytest.raises(WireError, match=r"got `int` - at `\$.servers\[0\]`"):
        answer_from_json(bad(servers=[1]))
    server = {"info": {"name": "s", "host": "h", "fl_port": 1, "admin_port": 0}}
    with pytest.raises(WireError, match=r">= 1 - at `\$.servers\[0\].info.admin_port`"):
        answer_from_json(bad(servers=[server]))
    with pytest.raises(WireError, match=r"got `str` - at `\$.heartbeat_interval`"):
        answer_from_json(bad(heartbeat_interval="2"))
    with pytest.raises(WireError, match=r"timezone component - at `\$.lease.expires_at`"):
        answer_from_json(bad(lease={"seconds": 1, "expires_at": "2026-01-01T00:00:00"}))
    with pytest.raises(WireError, match=r"out of range - at `\$.heartbeat_timeout`"):
        answer_from_json(
            b'{"ssid":null,"hot":null,"servers":[],"heartbeat_interval":1,'
            b'"heartbeat_timeout":1e400}'
        )


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
