"""The server's overseer agent: when it becomes hot, when it steps down (no network here)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from fedra.overseer import (
    Lease,
    OverseerAnswer,
    OverseerUnavailable,
    ServerHeartbeat,
    ServerInfo,
    ServerState,
    ServerStatus,
)
from fedra.runtime.ha import HaAgent

NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


@dataclass
class FakeServer:
    """Records what the agent asks of the server parent."""

    hot: bool = False
    ssid_in_store: int = 0
    refuse: bool = False
    calls: list[str] = field(default_factory=list)

    def become_hot(self, ssid: int) -> bool:
        self.calls.append(f"hot {ssid}")
        if self.refuse:
            return False
        self.hot = True
        return True

    def step_down(self, reason: str) -> None:
        self.calls.append(f"down: {reason}")
        self.hot = False

    def store_ssid(self) -> int:
        return self.ssid_in_store


@dataclass
class FakeClient:
    """Answers heartbeats from a script; an exception in the script is raised."""

    answers: list[OverseerAnswer | Exception]
    beats: list[ServerHeartbeat] = field(default_factory=list)

    def heartbeat(self, beat: ServerHeartbeat) -> OverseerAnswer:
        self.beats.append(beat)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def info(name: str) -> ServerInfo:
    return ServerInfo(name, "127.0.0.1", 8002, 8003)


def answer(hot: str | None, ssid: int, lease_s: float | None = None) -> OverseerAnswer:
    lease = None
    if lease_s is not None:
        lease = Lease(lease_s, NOW, deadline=time.monotonic() + lease_s)
    servers = tuple(
        ServerStatus(info(n), ServerState.READY, n == hot, True, NOW, 0.1)
        for n in ("server1", "server2")
    )
    return OverseerAnswer(ssid, info(hot) if hot else None, servers, 2.0, 10.0, lease)


def agent(server: FakeServer, client: FakeClient) -> HaAgent:
    return HaAgent(
        server,
        client,  # type: ignore[arg-type]
        name="server1",
        host="127.0.0.1",
        fl_port=8002,
        admin_port=8003,
    )


def test_the_lease_makes_it_hot_under_the_answers_ssid() -> None:
    server, client = FakeServer(ssid_in_store=4), FakeClient([answer("server1", 5, 8.0)])
    agent(server, client).step()
    assert server.calls == ["hot 5"] and server.hot
    beat = client.beats[0]
    assert (beat.state, beat.ssid, beat.name) == (ServerState.READY, 4, "server1")


def test_named_hot_without_a_lease_it_waits() -> None:
    server = FakeServer()
    agent(server, FakeClient([answer("server1", 5, None)])).step()
    assert server.calls == [] and not server.hot


def test_it_steps_down_when_the_overseer_names_another_server() -> None:
    server = FakeServer()
    client = FakeClient([answer("server1", 5, 8.0), answer("server2", 6, None)])
    ha = agent(server, client)
    ha.step()
    ha.step()
    assert server.calls == ["hot 5", "down: the overseer names server2 hot"]
    assert client.beats[1].state == ServerState.HOT


def test_an_unreachable_overseer_is_survived_while_the_lease_lasts() -> None:
    server = FakeServer()
    unreachable = OverseerUnavailable("https://o:8443/api/v1", "refused")
    client = FakeClient([answer("server1", 5, 30.0), unreachable])
    ha = agent(server, client)
    ha.step()
    ha.step()
    assert server.hot and server.calls == ["hot 5"]


def test_a_lost_lease_makes_it_step_down_by_itself() -> None:
    server = FakeServer()
    unreachable = OverseerUnavailable("https://o:8443/api/v1", "refused")
    client = FakeClient([answer("server1", 5, 0.01), unreachable])
    ha = agent(server, client)
    ha.step()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ha._lease_deadline > time.monotonic():
        time.sleep(0.005)
    ha.step()
    assert not server.hot
    assert server.calls[-1] == "down: the lease from the overseer ran out"


def test_a_store_that_refuses_the_ssid_keeps_it_cold() -> None:
    server = FakeServer(refuse=True)
    agent(server, FakeClient([answer("server1", 3, 8.0)])).step()
    assert server.calls == ["hot 3"] and not server.hot


def test_a_standby_polls_fast_only_while_the_hot_server_is_silent() -> None:
    server = FakeServer()
    live = answer("server2", 5, None)
    silent_servers = tuple(
        ServerStatus(s.info, s.state, s.hot, s.info.name != "server2", NOW, 0.1)
        for s in live.servers
    )
    silent = OverseerAnswer(5, live.hot, silent_servers, 2.0, 10.0)
    ha = agent(server, FakeClient([live, silent]))
    ha.step()
    assert ha._next_wait() == 2.0
    ha.step()
    assert ha._next_wait() == 0.25


def test_ask_now_heartbeats_at_once_and_the_answer_decides() -> None:
    """A site's claim of a newer session wakes the agent: the overseer's answer, not the
    claim, makes the server step down (here: it names server2)."""
    import msgspec

    slow = msgspec.structs.replace(answer("server1", 5, 60.0), heartbeat_interval=60.0)
    other = msgspec.structs.replace(answer("server2", 6, None), heartbeat_interval=60.0)
    server, client = FakeServer(), FakeClient([slow, slow, other])
    ha = agent(server, client)
    ha.start()
    try:
        deadline = time.monotonic() + 10
        while len(client.beats) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.hot
        ha.ask_now("site-3 claims session 1000000000")
        while len(client.beats) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(client.beats) == 2 and server.hot  # the overseer still says server1
        ha.ask_now("site-1 claims session 6")
        while len(client.beats) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.calls == ["hot 5", "down: the overseer names server2 hot"]
    finally:
        client.answers.append(other)
        ha.stop(release=False)


def test_the_lease_ends_on_time_while_a_heartbeat_hangs() -> None:
    """A partition that drops packets holds a heartbeat for the client's whole timeout: the
    server must still step down when its lease runs out, not when the call gives up (the
    overseer may promote a standby right after the lease and its margin)."""
    import threading

    hanging = threading.Event()
    release = threading.Event()

    @dataclass
    class HangingClient(FakeClient):
        def heartbeat(self, beat: ServerHeartbeat) -> OverseerAnswer:
            if self.beats:  # every heartbeat after the first hangs, as into a dead network
                hanging.set()
                release.wait(30)
                raise OverseerUnavailable("https://o:8443/api/v1", "no answer within 5 s")
            return super().heartbeat(beat)

    server = FakeServer()
    ha = agent(server, HangingClient([answer("server1", 5, 1.0)]))
    ha.start()
    try:
        deadline = time.monotonic() + 10
        while not server.hot and time.monotonic() < deadline:
            time.sleep(0.01)
        ha.ask_now("a test")  # the next heartbeat goes out while the lease still holds
        assert hanging.wait(10)
        assert server.hot
        deadline = time.monotonic() + 10
        while server.hot and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not server.hot and not release.is_set(), server.calls  # down while it hangs
        assert server.calls == ["hot 5", "down: the lease from the overseer ran out"]
    finally:
        release.set()
        ha.stop(release=False)
