"""``fedra overseer status`` explains a state that is not what it seems: a dead server still
shows the state it last reported ("hot"), so a note says it is not live, since when, and
when a standby takes over (in the text and in the JSON)."""

from __future__ import annotations

import json

import pytest

from fedra.admin.render import OutputFormat
from fedra.cli.overseer import _print
from fedra.overseer import Election, OverseerSettings, ServerState, answer_to_json
from tests.unit.overseer.conftest import FakeClock, beat

#: Not live after 3 s of silence; a standby may take over 6 s after the last lease renewal.
SLOW_LEASE = OverseerSettings(heartbeat_interval=1, heartbeat_timeout=3, lease=5, lease_margin=1)


def _notes(e: Election) -> dict[str, str | None]:
    return {s.info.name: s.note for s in e.state().servers}


def test_a_dead_hot_server_is_explained_with_when_a_standby_takes_over(clock: FakeClock) -> None:
    e = Election(SLOW_LEASE, clock=clock, wall_clock=clock.wall)
    e.server_heartbeat(beat("s1", ServerState.HOT))
    e.server_heartbeat(beat("s2"))
    assert _notes(e) == {"s1": None, "s2": None}  # all well: nothing to explain
    clock.advance(4.0)  # s1 died; s2 keeps heartbeating
    e.server_heartbeat(beat("s2"))
    status = {s.info.name: s for s in e.state().servers}
    dead = status["s1"]
    assert (dead.state, dead.hot, dead.live) == (ServerState.HOT, True, False)
    assert dead.note == (
        "not live: last heartbeat 4.0 s ago (more than the 3 s heartbeat timeout); 'hot' is "
        "the state it reported then; the overseer promotes s2 in 2.0 s (once the lease it "
        "may still hold has run out)"
    )
    assert status["s2"].note is None


def test_a_dead_hot_server_without_a_standby_stays_hot_and_says_so(clock: FakeClock) -> None:
    e = Election(SLOW_LEASE, clock=clock, wall_clock=clock.wall)
    e.server_heartbeat(beat("s1", ServerState.HOT))
    e.server_heartbeat(beat("s2"))
    clock.advance(30.0)  # both silent
    notes = _notes(e)
    assert notes["s1"] is not None and notes["s1"].startswith("not live: last heartbeat 30.0 s")
    assert notes["s1"].endswith(
        "no live, ready standby to promote: it stays the hot server until one heartbeats"
    )
    assert notes["s2"] is not None and "'ready' is the state it reported then" in notes["s2"]
    assert "promote" not in notes["s2"]  # a standby's silence delays nothing


def test_a_former_hot_server_that_still_says_hot_is_explained(clock: FakeClock) -> None:
    e = Election(SLOW_LEASE, clock=clock, wall_clock=clock.wall)
    e.server_heartbeat(beat("s1", ServerState.HOT))
    e.server_heartbeat(beat("s2"))
    e.promote("s2", by="admin@org")
    note = _notes(e)["s1"]
    assert note is not None and note.startswith("reports 'hot' (its own view) but the hot server")


def test_heartbeat_answers_carry_no_notes(clock: FakeClock) -> None:
    e = Election(SLOW_LEASE, clock=clock, wall_clock=clock.wall)
    e.server_heartbeat(beat("s1", ServerState.HOT))
    clock.advance(4.0)
    answer = e.server_heartbeat(beat("s2"))  # s1 is dead: its state would have a note
    assert all("note" not in s for s in json.loads(answer_to_json(answer))["servers"])


def test_status_prints_the_note_under_the_server_and_keeps_it_in_json(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    e = Election(SLOW_LEASE, clock=clock, wall_clock=clock.wall)
    e.server_heartbeat(beat("s1", ServerState.HOT))
    e.server_heartbeat(beat("s2"))
    clock.advance(4.0)
    e.server_heartbeat(beat("s2"))
    answer = e.state()
    _print(answer, OutputFormat.TEXT)
    lines = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("* s1"))
    assert "hot" in lines[row] and "silent" in lines[row]
    assert lines[row + 1].strip().startswith("not live: last heartbeat 4.0 s ago")
    _print(answer, OutputFormat.JSON)
    servers = json.loads(capsys.readouterr().out)["servers"]
    assert servers[0]["state"] == "hot" and servers[0]["live"] is False
    assert servers[0]["note"].startswith("not live: last heartbeat 4.0 s ago")
    assert "note" not in servers[1]


def test_a_dead_server_after_the_cutover_names_the_new_hot_server(clock: FakeClock) -> None:
    e = Election(SLOW_LEASE, clock=clock, wall_clock=clock.wall)
    e.server_heartbeat(beat("s1", ServerState.HOT))
    e.server_heartbeat(beat("s2"))
    for _ in range(10):  # s1 died; s2 heartbeats every second and is promoted
        clock.advance(1.0)
        e.server_heartbeat(beat("s2", ServerState.HOT if e.hot == "s2" else ServerState.READY))
    assert e.hot == "s2"
    note = _notes(e)["s1"]
    assert note is not None and note.endswith(
        "'hot' is the state it reported then; the hot server is s2 now"
    )
