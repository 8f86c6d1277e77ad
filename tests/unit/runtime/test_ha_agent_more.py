"""The HA agent's other edges: how a kit reaches its overseer (the local override), what it
says when it stops, how an unreachable overseer is logged, the lease withheld. A fake
overseer client answers; no network."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.overseer import OverseerUnavailable, ServerState
from fedra.pki import Identity, create_ca, write_participant
from fedra.runtime.ha import LOCAL_OVERSEER_FILE, overseer_client
from tests.unit.runtime.test_ha_agent import FakeClient, FakeServer, agent, answer

UNREACHABLE = OverseerUnavailable("https://o:8443/api/v1", "refused")


def server_kit(root: Path, overseer: bool = True) -> Path:
    startup = root / "startup"
    write_participant(
        startup, create_ca("ha-more"), Identity("server1", "o", "server"), file_stem="server"
    )
    data: dict[str, object] = {"name": "server1"}
    if overseer:
        data["overseer"] = {"name": "o", "host": "o", "port": 8443, "url": "https://o:8443/api/v1"}
    (startup / "fed_server.json").write_text(json.dumps(data))
    return root


def local(root: Path, text: str) -> Path:
    path = root / "local" / LOCAL_OVERSEER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- reaching the overseer ------------------------------------------------------------------
def test_the_kit_names_the_overseer(tmp_path: Path) -> None:
    client = overseer_client(server_kit(tmp_path), "server")
    assert client.url == "https://o:8443/api/v1"


def test_a_kit_without_an_overseer_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no overseer block"):
        overseer_client(server_kit(tmp_path, overseer=False), "server")


def test_the_local_file_gives_another_way_to_the_same_overseer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedra.ha")
    kit = server_kit(tmp_path)
    path = local(kit, '{"url": "https://proxy.local:9443/api/v1/"}')
    client = overseer_client(kit, "server")
    assert client.url == "https://proxy.local:9443/api/v1"
    assert f"reaching the overseer at https://proxy.local:9443/api/v1/ (from {path})" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{url", r"overseer\.json: line 1: invalid JSON"),
        ('["https://x/api/v1"]', r'overseer\.json: expected \{"url": "https://host:port/api/v1"\}'),
        ('{"url": 443}', r"overseer\.json: expected \{"),
        ('{"address": "https://x"}', r"overseer\.json: expected \{"),
        ('{"url": "http://plain:80/api/v1"}', "expected https://host:port/api/v1, got 'http://"),
    ],
)
def test_a_bad_local_file_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    kit = server_kit(tmp_path)
    local(kit, text)
    with pytest.raises(ConfigError, match=message):
        overseer_client(kit, "server")


# -- stopping -------------------------------------------------------------------------------
def test_stopping_tells_the_overseer_with_the_stores_session() -> None:
    client = FakeClient([answer("server1", 5, None)])
    agent(FakeServer(ssid_in_store=7), client).stop()
    (beat,) = client.beats
    assert (beat.state, beat.ssid, beat.name, beat.admin_port) == (
        ServerState.STOPPING,
        7,
        "server1",
        8003,
    )


def test_a_store_without_a_session_sends_none() -> None:
    client = FakeClient([answer("server1", 5, None)])
    agent(FakeServer(ssid_in_store=0), client).stop()
    assert client.beats[0].ssid is None


def test_stopping_survives_an_unreachable_overseer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fedra.ha")
    agent(FakeServer(), FakeClient([UNREACHABLE])).stop()
    assert "could not tell the overseer that this server stops" in caplog.text


def test_stopping_without_release_says_nothing() -> None:
    client = FakeClient([])
    agent(FakeServer(), client).stop(release=False)
    assert client.beats == []


# -- an unreachable overseer ---------------------------------------------------------------
def test_an_unreachable_overseer_is_logged_thrice_then_every_thirtieth_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fedra.ha")
    client = FakeClient([UNREACHABLE] * 60 + [answer("server2", 5, None)])
    ha = agent(FakeServer(), client)
    for _ in range(61):
        ha.step()
    lines = [r.getMessage() for r in caplog.records if "overseer unreachable" in r.message]
    assert [line.split(")")[0] for line in lines] == [
        "overseer unreachable (1",
        "overseer unreachable (2",
        "overseer unreachable (3",
        "overseer unreachable (30",
        "overseer unreachable (60",
    ]
    assert "overseer reachable again" in caplog.text
    assert ha.hot_server() == "server2"


def test_a_cold_server_that_cannot_reach_the_overseer_stays_cold() -> None:
    server = FakeServer()
    agent(server, FakeClient([UNREACHABLE])).step()
    assert server.calls == [] and not server.hot


# -- the answer -----------------------------------------------------------------------------
def test_the_hot_server_is_unknown_until_the_overseer_answers() -> None:
    ha = agent(FakeServer(), FakeClient([answer(None, 0, None)]))
    assert ha.hot_server() is None
    ha.step()
    assert ha.hot_server() is None  # an answer that names no hot server
    assert ha.answer is not None


def test_a_hot_server_named_hot_but_without_a_lease_steps_down() -> None:
    server = FakeServer()
    ha = agent(server, FakeClient([answer("server1", 5, 8.0), answer("server1", 5, None)]))
    ha.step()
    ha.step()
    assert server.calls == ["hot 5", "down: the overseer withholds the lease"]


def test_a_hot_server_when_none_is_named_steps_down() -> None:
    server = FakeServer()
    ha = agent(server, FakeClient([answer("server1", 5, 8.0), answer(None, 5, None)]))
    ha.step()
    ha.step()
    assert server.calls[-1] == "down: the overseer names no server hot"


def test_the_answer_sets_the_heartbeat_interval() -> None:
    ha = agent(FakeServer(), FakeClient([answer("server2", 5, None)]))
    ha.interval = 99.0
    ha.step()
    assert ha.interval == 2.0  # as the overseer asks


def test_a_lease_without_a_session_id_does_not_make_it_hot() -> None:
    server = FakeServer()
    agent(server, FakeClient([answer("server1", 0, 8.0)])).step()
    assert server.calls == [] and not server.hot


def test_a_hot_server_wakes_in_time_for_its_lease() -> None:
    server = FakeServer()
    ha = agent(server, FakeClient([answer("server1", 5, 8.0)]))
    ha.step()
    assert server.hot
    ha.interval = 60.0
    assert 0.05 <= ha._next_wait() <= 8.0


def test_ask_now_wakes_the_agent_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fedra.ha")
    ha = agent(FakeServer(), FakeClient([]))
    assert not ha._wake.is_set()
    ha.ask_now("site site-a claims service session 9")
    assert ha._wake.is_set()
    assert "asking the overseer now: site site-a claims service session 9" in caplog.text
