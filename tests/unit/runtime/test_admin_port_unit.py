"""The admin port's limits at their edges: what counts as idle, the gate each connection gets
(judged by the server's policy file), refused identities leaving nothing behind, the spool.
In-memory connections only; the serving threads are joined, not slept on."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fedra.core import FedraError
from fedra.runtime.admin_port import (
    ADMIN_MAX_MESSAGE,
    UPLOAD_HEADROOM,
    AdminPort,
    _Tracked,
    judge_message,
    who,
)
from fedra.transport import ChannelClosed, Connection, MessageRefused, PeerIdentity
from fedra.wire import Envelope, prepare_envelope

LEAD = PeerIdentity("lead@a.org", "a", "lead")
MEMBER = PeerIdentity("member@a.org", "a", "member")
MIB = 1 << 20


def head(cmd: str, kind: str = "admin") -> bytes:
    envelope = Envelope(kind, {"id": "1", "cmd": cmd, "args": {}})
    return bytes(prepare_envelope(envelope).head)


class Scripted(Connection):
    """A connection that answers ``recv`` from a list, then reports the channel closed;
    ``last_heard`` is set by the test; the gate is kept."""

    def __init__(self, peer: PeerIdentity, requests: list[Envelope] | None = None) -> None:
        self._peer = peer
        self.requests = list(requests or [])
        self.heard = 0.0
        self.is_closed = False
        self.gate: object = None
        self.on_recv: list[object] = []

    @property
    def peer(self) -> PeerIdentity:
        return self._peer

    @property
    def closed(self) -> bool:
        return self.is_closed

    @property
    def last_heard(self) -> float:
        return self.heard

    def send(self, envelope: Envelope) -> None:
        del envelope

    def recv(self, timeout: float | None = None) -> Envelope:
        for hook in self.on_recv:
            hook()  # type: ignore[operator]
        if not self.requests:
            raise ChannelClosed("no more requests")
        return self.requests.pop(0)

    def close(self) -> None:
        self.is_closed = True

    def set_gate(self, gate: object) -> None:  # type: ignore[override]
        self.gate = gate


REQUEST = Envelope("admin", {"id": "1", "cmd": "check_status", "args": {}})


# -- what counts as idle ---------------------------------------------------------------------
def test_idle_time_counts_from_the_last_request_or_frame_heard() -> None:
    inner = Scripted(LEAD, [REQUEST])
    tracked = _Tracked(inner)
    start = tracked.since
    assert tracked.idle_for(start + 10) == pytest.approx(10)
    inner.heard = start + 8  # a frame of the next request arrived (the transport saw it)
    assert tracked.idle_for(start + 10) == pytest.approx(2)


def test_a_connection_is_busy_from_a_request_until_it_asks_for_the_next() -> None:
    inner = Scripted(LEAD, [REQUEST, REQUEST])
    tracked = _Tracked(inner)
    seen: list[bool] = []
    inner.on_recv.append(lambda: seen.append(tracked.busy))
    assert not tracked.busy
    assert tracked.recv() is REQUEST
    assert tracked.busy and tracked.idle_for(tracked.since + 10_000) == 0.0  # being answered
    tracked.recv()
    assert seen == [False, False]  # waiting for a request is not being busy
    with pytest.raises(ChannelClosed):
        tracked.recv()
    assert not tracked.busy  # the channel closed while it waited


def test_the_tracked_connection_passes_calls_through() -> None:
    inner = Scripted(MEMBER)
    tracked = _Tracked(inner)
    assert tracked.peer == MEMBER and not tracked.closed
    tracked.close()
    assert inner.is_closed and tracked.closed


def test_an_admin_is_named_with_role_and_org() -> None:
    assert who(MEMBER) == "member@a.org (member, a)"


# -- judging a message ----------------------------------------------------------------------
def test_the_command_limit_can_be_set_and_is_inclusive() -> None:
    allow = lambda p: True  # noqa: E731
    assert (
        judge_message(LEAD, 100, head("x"), max_job_bytes=MIB, may_upload=allow, max_message=100)
        is None
    )
    why = judge_message(LEAD, 101, head("x"), max_job_bytes=MIB, may_upload=allow, max_message=100)
    assert why == (
        "refused: an admin message of 101 bytes is above the limit of 100 "
        "(only a job upload may be bigger)"
    )


def test_an_upload_command_in_a_message_of_another_kind_counts_as_a_command() -> None:
    why = judge_message(
        LEAD,
        2 * MIB,
        head("submit_job", kind="reply"),
        max_job_bytes=8 * MIB,
        may_upload=lambda p: True,
    )
    assert why is not None and "only a job upload may be bigger" in why


def test_the_role_is_asked_only_for_uploads_above_the_command_limit() -> None:
    asked: list[PeerIdentity] = []

    def may(peer: PeerIdentity) -> bool:
        asked.append(peer)
        return True

    judge_message(MEMBER, ADMIN_MAX_MESSAGE, head("submit_job"), max_job_bytes=MIB, may_upload=may)
    assert asked == []
    judge_message(MEMBER, 2 * MIB, head("submit_job"), max_job_bytes=MIB, may_upload=may)
    assert asked == [MEMBER]


# -- the port: gates, identities, the spool ---------------------------------------------------
def _serve_once(conn: Connection) -> None:
    """Answer requests until the channel closes (the scripted list runs out)."""
    try:
        while True:
            conn.recv()
    except ChannelClosed:
        pass


def _join(name: str) -> None:
    """Wait for the serving thread of admin ``name`` to end (its connection is released)."""
    for thread in threading.enumerate():
        if thread.name == f"admin-{name}":
            thread.join(30)
            assert not thread.is_alive()


def test_a_refused_identity_leaves_no_entry_behind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = AdminPort(tmp_path, _serve_once, max_job_bytes=MIB, per_admin=0, check_every_s=3600)
    conn = Scripted(LEAD)
    with pytest.raises(FedraError, match=r"refused: lead@a\.org holds 0 admin connections already"):
        port.connected(conn)
    assert port.open_count(LEAD) == 0 and LEAD not in port._open
    assert conn.gate is None  # refused before any gate was set
    assert "refused an admin connection of lead@a.org (lead, a)" in caplog.text


def test_a_connection_that_ends_releases_its_place(tmp_path: Path) -> None:
    port = AdminPort(tmp_path, _serve_once, max_job_bytes=MIB, per_admin=1, check_every_s=3600)
    first = Scripted(LEAD, [REQUEST])
    port.connected(first)
    _join(LEAD.name)
    assert first.is_closed and port.open_count(LEAD) == 0 and LEAD not in port._open
    port.connected(Scripted(LEAD))  # the one place is free again
    _join(LEAD.name)


def test_the_gate_refuses_an_upload_by_the_servers_policy_and_ends_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = AdminPort(tmp_path, _serve_once, max_job_bytes=4 * MIB, check_every_s=3600)
    member, lead = Scripted(MEMBER), Scripted(LEAD)
    port.connected(member)
    port.connected(lead)
    _join(MEMBER.name)
    _join(LEAD.name)
    assert callable(member.gate) and callable(lead.gate)
    with pytest.raises(MessageRefused, match=r"member member@a\.org may not submit jobs") as no:
        member.gate(2 * MIB, head("submit_job"))
    assert no.value.ends_connection
    assert "admin member@a.org (member, a): refused: member member@a.org may not" in caplog.text
    assert lead.gate(4 * MIB + UPLOAD_HEADROOM, head("submit_job")) is None
    with pytest.raises(MessageRefused, match="above the server's limit of 4194304 bytes"):
        lead.gate(4 * MIB + UPLOAD_HEADROOM + 1, head("submit_job"))
    with pytest.raises(MessageRefused, match="only a job upload may be bigger"):
        lead.gate(2 * MIB, head("list_jobs"))


def test_a_policy_that_lets_members_submit_opens_the_gate_to_them(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    roles = {"member": {"submit_job": "any"}}
    (tmp_path / "local" / "authorization.json").write_text(json.dumps({"roles": roles}))
    port = AdminPort(tmp_path, _serve_once, max_job_bytes=4 * MIB, check_every_s=3600)
    member = Scripted(MEMBER)
    port.connected(member)
    _join(MEMBER.name)
    assert callable(member.gate)
    assert member.gate(2 * MIB, head("submit_job")) is None


def test_uploads_are_spooled_to_the_kit_and_commands_stay_in_memory(tmp_path: Path) -> None:
    port = AdminPort(tmp_path, _serve_once, max_job_bytes=MIB, check_every_s=3600)
    assert not port.spool.wants(ADMIN_MAX_MESSAGE)
    assert port.spool.wants(ADMIN_MAX_MESSAGE + 1)
    assert Path(port.spool.directory) == tmp_path / "spool"


def test_close_idle_leaves_a_busy_connection_open(tmp_path: Path) -> None:
    answering = threading.Event()
    release = threading.Event()

    def serve(conn: Connection) -> None:
        conn.recv()  # a request came: it is being answered
        answering.set()
        release.wait(30)

    port = AdminPort(tmp_path, serve, max_job_bytes=MIB, idle_timeout_s=1, check_every_s=3600)
    conn = Scripted(LEAD, [REQUEST])
    port.connected(conn)
    assert answering.wait(30)
    try:
        tracked = port._open[LEAD][0]
        assert port.close_idle(tracked.since + 10_000) == 0 and not conn.is_closed
    finally:
        release.set()
        _join(LEAD.name)
    assert conn.is_closed and port.open_count(LEAD) == 0
