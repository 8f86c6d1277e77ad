"""Fewer heartbeats with many sites: the server asks for an interval in its Welcome (sites /
HEARTBEATS_PER_S, at most a third of its heartbeat timeout) and a site parent beats at the
longer of that and its own, still ticking its machine at its own interval."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fedra.protocol import TO_SITE, Heartbeat, Welcome, decode, encode
from fedra.runtime.server_records import SiteHandle
from fedra.runtime.server_sites import HEARTBEATS_PER_S, heartbeat_interval, serve_site
from fedra.runtime.site_events import Tick
from fedra.runtime.site_parent import SiteParent
from fedra.runtime.site_resources import SiteResourceBook, SiteResources
from tests.unit.runtime.conftest import routing_server
from tests.unit.runtime.server_fakes import FakeConn
from tests.unit.runtime.test_server_sites_trim import Incoming


@pytest.mark.parametrize(
    ("sites", "timeout", "expected"),
    [
        (1064, 60.0, 20.0),  # a thousand sites: capped at a third of the timeout
        (500, 60.0, 500 / HEARTBEATS_PER_S),
        (66, 60.0, 66 / HEARTBEATS_PER_S),  # below the sites' own 5 s: they keep theirs
        (1064, 30.0, 10.0),
        (0, 60.0, None),
    ],
)
def test_the_interval_grows_with_the_sites(
    sites: int, timeout: float, expected: float | None
) -> None:
    assert heartbeat_interval(sites, timeout) == (
        None if expected is None else pytest.approx(expected)
    )


def test_the_welcome_asks_for_the_interval_of_the_servers_size() -> None:
    server = routing_server(sent=[])
    server.kit = SimpleNamespace(name="server1", max_connections=1064, heartbeat_timeout=60.0)  # type: ignore[assignment]
    server.wake = lambda: None  # type: ignore[method-assign]
    conn = Incoming("site-a", [])
    serve_site(server, SiteHandle("site-a", "org-a", conn))  # type: ignore[arg-type]
    welcome = decode(conn.sent[0], TO_SITE)
    assert isinstance(welcome, Welcome)
    assert welcome.heartbeat_interval == 20.0


def _site(tmp_path: Path, interval: float = 5.0) -> SiteParent:
    sp = SiteParent.__new__(SiteParent)  # no certificate, spool or overseer
    kit = SimpleNamespace(name="site-a", heartbeat_interval=interval, root=tmp_path)
    sp._setup(kit, SiteResourceBook("site-a", SiteResources(num_cpus=2)))  # type: ignore[arg-type]
    return sp


@pytest.mark.parametrize(("asked", "expected"), [(20.0, 20.0), (1.0, 5.0), (None, 5.0)])
def test_a_site_beats_at_the_longer_of_its_interval_and_the_servers(
    tmp_path: Path, asked: float | None, expected: float
) -> None:
    sp = _site(tmp_path)
    sp._from_server(encode(Welcome("server1", heartbeat_interval=asked)))
    assert sp.beat_every == expected


class Ticks:
    """A stop event whose wait returns at once ``count`` times (then stops the loop), and a
    clock that each wait moves on by the time waited."""

    def __init__(self, count: int) -> None:
        self.now, self.left = 1000.0, count

    def wait(self, timeout: float) -> bool:
        self.now += timeout
        self.left -= 1
        return self.left < 0

    def clock(self) -> float:
        return self.now


def test_the_heartbeat_loop_ticks_at_its_interval_and_beats_at_the_servers(
    tmp_path: Path,
) -> None:
    sp = _site(tmp_path)
    sp.beat_every = 20.0
    ticks = Ticks(8)  # 8 ticks of 5 s: 40 s
    sp._clock = ticks.clock  # type: ignore[method-assign]
    events: list[object] = []
    sp._dispatch = events.append  # type: ignore[method-assign,assignment]
    conn = FakeConn("server1")
    sp._heartbeat(conn, ticks)  # type: ignore[arg-type]
    assert sum(isinstance(e, Tick) for e in events) == 8
    beats = [decode(env, frozenset({Heartbeat})) for env in conn.sent]
    assert len(beats) == 2  # at 20 s and 40 s (at its own 5 s: 8)
