"""The election and lease rules, on a fake clock (no sockets, no files)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedra.overseer import (
    MAX_PARTICIPANTS,
    Election,
    ElectionRefused,
    OverseerSettings,
    PersistedState,
    ServerState,
)
from tests.unit.overseer.conftest import FakeClock, beat

# Defaults: interval 2, timeout 10, lease 8, margin 2 -> a silent hot server goes after 10 s.
DEFAULTS = OverseerSettings()


def election(clock: FakeClock, settings: OverseerSettings = DEFAULTS, **kw: object) -> Election:
    return Election(settings, clock=clock, wall_clock=clock.wall, **kw)  # type: ignore[arg-type]


def test_first_ready_server_is_elected_and_gets_the_lease(clock: FakeClock) -> None:
    e = election(clock)
    first = e.server_heartbeat(beat("s1"))
    assert first.hot is not None and first.hot.name == "s1"
    assert first.ssid == 1
    assert first.lease is not None and first.lease.seconds == DEFAULTS.lease
    assert first.lease.expires_at.timestamp() == pytest.approx(clock.wall() + DEFAULTS.lease)
    assert first.holds_lease("s1")
    second = e.server_heartbeat(beat("s2", port=9002))
    assert second.hot is not None and second.hot.name == "s1"
    assert second.lease is None and not second.holds_lease("s2")
    assert second.ssid == 1
    assert [(s.info.name, s.hot, s.live) for s in second.servers] == [
        ("s1", True, True),
        ("s2", False, True),
    ]
    assert second.servers[1].info.fl_port == 9002
    assert [p.name for p in e.take_promotions()] == ["s1"]


def test_a_starting_server_is_not_elected_until_ready(clock: FakeClock) -> None:
    e = election(clock)
    answer = e.server_heartbeat(beat("s1", ServerState.STARTING))
    assert answer.hot is None and answer.ssid is None and answer.lease is None
    clock.advance(1)
    answer = e.server_heartbeat(beat("s2"))
    assert answer.hot is not None and answer.hot.name == "s2"


def test_silent_hot_server_is_replaced_after_the_timeout_with_a_new_ssid(
    clock: FakeClock,
) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2"))
    # s1 falls silent; s2 keeps heartbeating every 2 s.
    t_last = clock.now
    while clock.now - t_last < DEFAULTS.promotion_delay - 0.5:
        clock.advance(2.0 if clock.now - t_last + 2 < DEFAULTS.promotion_delay else 0.4)
        answer = e.server_heartbeat(beat("s2"))
        assert answer.hot is not None and answer.hot.name == "s1", clock.now - t_last
        assert answer.ssid == 1 and answer.lease is None
    clock.now = t_last + DEFAULTS.promotion_delay + 0.01
    answer = e.server_heartbeat(beat("s2"))
    assert answer.hot is not None and answer.hot.name == "s2"
    assert answer.ssid == 2
    assert answer.holds_lease("s2")
    promotion = e.take_promotions()[-1]
    assert (promotion.name, promotion.previous, promotion.ssid) == ("s2", "s1", 2)
    assert "silent" in promotion.reason
    # s1 comes back: it is told s2 is hot and gets no lease.
    back = e.server_heartbeat(beat("s1", ServerState.HOT))
    assert back.hot is not None and back.hot.name == "s2" and back.lease is None


def test_promotion_waits_for_the_lease_when_it_is_longer_than_the_timeout(
    clock: FakeClock,
) -> None:
    slow_lease = OverseerSettings(
        heartbeat_interval=1, heartbeat_timeout=3, lease=5, lease_margin=1
    )
    e = election(clock, slow_lease)
    e.server_heartbeat(beat("s1"))
    renewed = clock.now
    e.server_heartbeat(beat("s2"))
    clock.advance(3.5)  # s1 not live any more, but its lease may still run
    answer = e.server_heartbeat(beat("s2"))
    assert not answer.servers[0].live
    assert answer.hot is not None and answer.hot.name == "s1"
    clock.now = renewed + 5.99
    assert e.server_heartbeat(beat("s2")).hot.name == "s1"  # type: ignore[union-attr]
    clock.now = renewed + 6.0
    assert e.server_heartbeat(beat("s2")).hot.name == "s2"  # type: ignore[union-attr]


def test_a_hot_server_that_keeps_heartbeating_stays_hot(clock: FakeClock) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    for _ in range(200):
        clock.advance(DEFAULTS.heartbeat_interval)
        assert e.server_heartbeat(beat("s1", ServerState.HOT)).holds_lease("s1")
        assert e.server_heartbeat(beat("s2")).hot.name == "s1"  # type: ignore[union-attr]
    assert e.ssid == 1


def test_stopping_releases_the_lease_and_a_standby_takes_over_at_once(
    clock: FakeClock,
) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2"))
    clock.advance(0.5)
    bye = e.server_heartbeat(beat("s1", ServerState.STOPPING))
    assert bye.lease is None
    assert bye.hot is not None and bye.hot.name == "s2"  # s2 is live and ready
    clock.advance(0.1)
    assert e.server_heartbeat(beat("s2")).holds_lease("s2")
    assert e.ssid == 2
    assert "stopping" in e.take_promotions()[-1].reason


def test_a_hot_server_restarting_keeps_its_place_if_back_before_its_lease_ends(
    clock: FakeClock,
) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2"))
    clock.advance(3)
    assert e.server_heartbeat(beat("s1", ServerState.STARTING)).lease is None
    assert e.server_heartbeat(beat("s2")).hot.name == "s1"  # type: ignore[union-attr]
    clock.advance(3)
    assert e.server_heartbeat(beat("s1")).holds_lease("s1")
    assert e.ssid == 1


def test_admin_promotion_is_immediate_but_the_lease_waits_for_the_old_one(
    clock: FakeClock,
) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    renewed = clock.now
    e.server_heartbeat(beat("s2"))
    clock.advance(1)
    state = e.promote("s2", by="admin@acme.org")
    assert state.hot is not None and state.hot.name == "s2" and state.ssid == 2
    assert "admin@acme.org" in e.take_promotions()[-1].reason
    # The old hot server is told to step down, the new one waits for the old lease.
    old = e.server_heartbeat(beat("s1", ServerState.HOT))
    assert old.hot.name == "s2" and old.lease is None  # type: ignore[union-attr]
    bound = renewed + DEFAULTS.lease + DEFAULTS.lease_margin
    clock.now = bound - 0.01
    assert e.server_heartbeat(beat("s2")).lease is None
    clock.now = bound
    assert e.server_heartbeat(beat("s2")).holds_lease("s2")


def test_promote_refusals(clock: FakeClock) -> None:
    e = election(clock)
    with pytest.raises(ElectionRefused, match=r"unknown server 'nobody'") as err:
        e.promote("nobody", by="a")
    assert err.value.status == 404
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2", ServerState.STARTING))
    with pytest.raises(ElectionRefused, match=r"reports 'starting'") as err:
        e.promote("s2", by="a")
    assert err.value.status == 409
    e.server_heartbeat(beat("s3"))
    clock.advance(DEFAULTS.heartbeat_timeout + 1)
    e.server_heartbeat(beat("s1"))
    with pytest.raises(ElectionRefused, match=r"s3: it is silent for 11.0 s"):
        e.promote("s3", by="a")
    # Promoting the hot server changes nothing.
    e.take_promotions()
    assert e.promote("s1", by="a").ssid == 1
    assert e.take_promotions() == []
    assert not e.dirty or e.persisted().ssid == 1


def test_no_live_standby_keeps_the_silent_hot_server(clock: FakeClock) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    clock.advance(60)
    state = e.state()
    assert state.hot is not None and state.hot.name == "s1" and not state.servers[0].live
    assert e.server_heartbeat(beat("s1")).holds_lease("s1")
    assert e.ssid == 1


def test_ssid_is_above_every_ssid_a_server_reported(clock: FakeClock) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1", ServerState.STARTING, ssid=41))
    assert e.server_heartbeat(beat("s2", ssid=7)).ssid == 42
    clock.advance(1)
    e.server_heartbeat(beat("s1", ssid=100))
    assert e.promote("s1", by="a").ssid == 101


def test_participants_are_listed_in_the_state(clock: FakeClock) -> None:
    e = election(clock)
    e.participant_heartbeat("site-1", "hospital", "client")
    clock.advance(2)
    answer = e.participant_heartbeat("lead@acme.org", "acme", "lead")
    assert answer.participants == ()  # only the full state lists them
    state = e.state()
    assert [(p.name, p.role, p.age) for p in state.participants] == [
        ("lead@acme.org", "lead", 0.0),
        ("site-1", "client", 2.0),
    ]


def test_participants_are_bounded(clock: FakeClock) -> None:
    e = election(clock)
    for i in range(MAX_PARTICIPANTS + 5):
        clock.advance(0.001)
        e.participant_heartbeat(f"site-{i}", "o", "client")
    names = {p.name for p in e.state().participants}
    assert len(names) == MAX_PARTICIPANTS
    assert "site-0" not in names and f"site-{MAX_PARTICIPANTS + 4}" in names


# -- restart ----------------------------------------------------------------------------


def test_restart_keeps_ssid_and_hot_and_the_holder_renews_at_once(clock: FakeClock) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2"))
    saved = e.persisted()
    assert saved == PersistedState(
        ssid=1, hot="s1", lease_holder="s1", servers=(beat("s1").info, beat("s2").info)
    )
    clock.advance(5)
    again = election(clock, saved=saved)
    answer = again.server_heartbeat(beat("s1"))
    assert answer.ssid == 1 and answer.holds_lease("s1")
    assert not again.dirty  # nothing new to save


def test_after_a_restart_nobody_else_gets_a_lease_for_a_full_lease(clock: FakeClock) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2"))
    clock.advance(1)
    restarted = clock.now
    again = election(clock, saved=e.persisted())
    # Restored servers count as seen at the restart: s1 stays hot until it is silent for
    # the timeout *and* a full lease + margin has passed since the restart.
    for _ in range(4):
        clock.advance(2)
        assert again.server_heartbeat(beat("s2")).hot.name == "s1"  # type: ignore[union-attr]
    clock.now = restarted + DEFAULTS.promotion_delay + 0.01
    answer = again.server_heartbeat(beat("s2"))
    assert answer.hot.name == "s2" and answer.ssid == 2  # type: ignore[union-attr]


def test_restart_while_fenced_keeps_the_new_hot_server_waiting(clock: FakeClock) -> None:
    e = election(clock)
    e.server_heartbeat(beat("s1"))
    e.server_heartbeat(beat("s2"))
    e.promote("s2", by="admin")
    saved = e.persisted()
    assert (saved.hot, saved.lease_holder) == ("s2", "s1")
    clock.advance(DEFAULTS.lease + DEFAULTS.lease_margin)  # would be enough without a restart
    restarted = clock.now
    again = election(clock, saved=saved)
    assert again.server_heartbeat(beat("s2")).lease is None
    clock.now = restarted + DEFAULTS.lease + DEFAULTS.lease_margin
    assert again.server_heartbeat(beat("s2")).holds_lease("s2")


# -- the safety property ------------------------------------------------------------------

SERVERS = ("s1", "s2", "s3")
_STATES = [ServerState.READY, ServerState.READY, ServerState.HOT, ServerState.STARTING]
_actions = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 11.0])),
        st.tuples(
            st.just("beat"),
            st.sampled_from(SERVERS),
            st.sampled_from([*_STATES, ServerState.STOPPING]),
        ),
        st.tuples(st.just("beat"), st.sampled_from(SERVERS), st.sampled_from(_STATES)),
        st.tuples(st.just("promote"), st.sampled_from(SERVERS)),
        st.tuples(st.just("restart")),
    ),
    min_size=3,
    max_size=80,
)


@settings(max_examples=600, deadline=None)
@given(actions=_actions)
def test_never_two_servers_with_a_valid_lease(actions: list[tuple[object, ...]]) -> None:
    """Whatever happens, a lease is only granted when every other server's lease (counted
    from the moment it sent its heartbeat, as servers do) has run out; SSIDs only grow."""
    clock = FakeClock()
    e = election(clock)
    saved = e.persisted()
    deadlines: dict[str, float] = {}
    last_ssid = 0
    for action in actions:
        if action[0] == "advance":
            clock.advance(float(action[1]))  # type: ignore[arg-type]
        elif action[0] == "beat":
            name, state = str(action[1]), action[2]
            if state is ServerState.STOPPING:
                deadlines.pop(name, None)  # a server says "stopping" once it stopped serving
            sent = clock.now
            answer = e.server_heartbeat(beat(name, state))  # type: ignore[arg-type]
            if answer.lease is not None:
                assert state in (ServerState.READY, ServerState.HOT)
                assert answer.hot is not None and answer.hot.name == name
                for other, deadline in deadlines.items():
                    assert other == name or deadline <= clock.now, (other, deadline, clock.now)
                deadlines[name] = sent + answer.lease.seconds
            # Servers that are told to step down are assumed to ignore it: only their
            # deadline stops them (the worst case the lease must cover).
        elif action[0] == "promote":
            with contextlib.suppress(ElectionRefused):
                e.promote(str(action[1]), by="admin")
        else:
            e = election(clock, saved=saved)
        if e.dirty:  # the service saves before answering
            saved = e.persisted()
            e.mark_saved()
        if e.ssid is not None:
            assert e.ssid >= last_ssid
            last_ssid = e.ssid
