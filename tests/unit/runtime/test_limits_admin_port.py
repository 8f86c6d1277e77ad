"""The admin port's limits: message sizes by command and role, connections per identity,
idle timeout; and fed_server.json's max_job_bytes."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest

from fedra.core import ConfigError, FedraError
from fedra.runtime.admin_port import (
    ADMIN_MAX_MESSAGE,
    UPLOAD_HEADROOM,
    AdminPort,
    judge_message,
    may_submit,
)
from fedra.runtime.config import ServerKit
from fedra.transport import ChannelClosed, Connection, MessageRefused, PeerIdentity
from fedra.wire import Envelope, prepare_envelope

LEAD = PeerIdentity("lead@a.org", "a", "lead")
MEMBER = PeerIdentity("member@a.org", "a", "member")
OTHER = PeerIdentity("admin@c.org", "c", "project_admin")
MIB = 1 << 20


def head(cmd: str) -> bytes:
    return bytes(prepare_envelope(Envelope("admin", {"id": "1", "cmd": cmd, "args": {}})).head)


def judge(peer: PeerIdentity, cmd: str, total: int, max_job: int = 4 * MIB) -> str | None:
    return judge_message(
        peer, total, head(cmd), max_job_bytes=max_job, may_upload=lambda p: p.role != "member"
    )


def test_commands_up_to_one_mib_pass_whoever_sends_them() -> None:
    assert judge(MEMBER, "list_jobs", ADMIN_MAX_MESSAGE) is None
    assert judge(MEMBER, "submit_job", 1000) is None  # the handler refuses the member later


def test_a_bigger_command_is_refused() -> None:
    why = judge(LEAD, "list_jobs", ADMIN_MAX_MESSAGE + 1)
    assert why is not None and "above the limit of 1048576" in why


def test_a_big_message_whose_header_is_not_in_its_first_frame_counts_as_a_command() -> None:
    why = judge_message(
        LEAD, 10 * MIB, b"\x00" * 64, max_job_bytes=100 * MIB, may_upload=lambda p: True
    )
    assert why is not None and "only a job upload may be bigger" in why


def test_an_upload_from_a_role_that_may_not_submit_is_refused() -> None:
    why = judge(MEMBER, "submit_job", 2 * MIB)
    assert why is not None and "member member@a.org may not submit jobs" in why


def test_an_upload_is_bounded_by_max_job_bytes() -> None:
    assert judge(LEAD, "submit_job", 4 * MIB + UPLOAD_HEADROOM) is None
    why = judge(LEAD, "submit_job", 4 * MIB + UPLOAD_HEADROOM + 1)
    assert why is not None and "above the server's limit of 4194304 bytes" in why


def test_may_submit_reads_the_servers_policy(tmp_path: Path) -> None:
    assert may_submit(tmp_path, LEAD) and not may_submit(tmp_path, MEMBER)
    assert not may_submit(tmp_path, PeerIdentity("x", "a", "org_admin"))


class FakeConnection(Connection):
    """A connection whose recv blocks until it is closed."""

    def __init__(self, peer: PeerIdentity) -> None:
        self._peer = peer
        self._closed = threading.Event()
        self.check: object = None

    @property
    def peer(self) -> PeerIdentity:
        return self._peer

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, envelope: Envelope) -> None:
        del envelope

    def recv(self, timeout: float | None = None) -> Envelope:
        self._closed.wait(timeout)
        raise ChannelClosed("closed")

    def close(self) -> None:
        self._closed.set()

    def set_gate(self, gate: object) -> None:  # type: ignore[override]
        self.check = gate


def serve(conn: Connection) -> None:
    with contextlib.suppress(ChannelClosed):
        conn.recv()


def wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_one_identity_holds_at_most_per_admin_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = AdminPort(tmp_path, serve, max_job_bytes=MIB, per_admin=3, check_every_s=3600)
    held = [FakeConnection(MEMBER) for _ in range(3)]
    for conn in held:
        port.connected(conn)
        assert conn.check is not None  # the size gate is set on every admitted connection
    with pytest.raises(FedraError, match="holds 3 admin connections already"):
        port.connected(FakeConnection(MEMBER))
    assert "refused an admin connection of member@a.org (member, a)" in caplog.text
    port.connected(FakeConnection(OTHER))  # another admin is not held back
    held[0].close()
    wait_until(lambda: port.open_count(MEMBER) == 2)
    port.connected(FakeConnection(MEMBER))  # a freed place can be taken again


def test_idle_connections_are_closed_busy_ones_are_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = AdminPort(tmp_path, serve, max_job_bytes=MIB, idle_timeout_s=60, check_every_s=3600)
    conn = FakeConnection(LEAD)
    port.connected(conn)
    wait_until(lambda: port.open_count(LEAD) == 1)
    assert port.close_idle(time.monotonic() + 30) == 0 and not conn.closed
    assert port.close_idle(time.monotonic() + 61) == 1
    wait_until(lambda: conn.closed and port.open_count(LEAD) == 0)
    assert "closed the admin connection of lead@a.org (lead, a): idle for" in caplog.text


def _kit(tmp_path: Path, **extra: object) -> ServerKit:
    startup = tmp_path / "startup"
    startup.mkdir(parents=True)
    (startup / "fed_server.json").write_text(json.dumps({"name": "server", **extra}))
    return ServerKit.load(tmp_path)


def test_max_job_bytes_has_a_default_and_is_read(tmp_path: Path) -> None:
    assert _kit(tmp_path / "a").max_job_bytes == 256 * MIB
    assert _kit(tmp_path / "b", max_job_bytes=8 * MIB).max_job_bytes == 8 * MIB


@pytest.mark.parametrize("value", [1024, 2 << 30, "1MB"])
def test_max_job_bytes_out_of_bounds_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="max_job_bytes"):
        _kit(tmp_path, max_job_bytes=value)


def test_a_session_whose_idle_connection_was_closed_connects_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fedra.admin import Session
    from fedra.admin.kit import AdminKit

    class Answering(FakeConnection):
        def send(self, envelope: Envelope) -> None:
            self.request_id = envelope.headers["id"]

        def recv(self, timeout: float | None = None) -> Envelope:
            return Envelope("reply", {"id": self.request_id, "ok": True, "data": {"x": 1}})

    closed = FakeConnection(LEAD)
    closed.close()  # the server closed it while the admin was idle
    fresh = Answering(LEAD)
    kit = object.__new__(AdminKit)
    monkeypatch.setattr(Session, "connect", classmethod(lambda cls, k: Session(fresh, kit=k)))
    session = Session(closed, kit=kit)
    assert session._call("check_status", {}) == ({"x": 1}, None)


def test_a_message_that_cannot_be_judged_is_refused(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "authorization.json").write_text("{not json")
    port = AdminPort(tmp_path, serve, max_job_bytes=MIB, check_every_s=3600)
    conn = FakeConnection(LEAD)
    port.connected(conn)
    check = conn.check
    assert callable(check)
    assert check(10, head("list_jobs")) is None  # small: in at once, no slot to hold
    with pytest.raises(MessageRefused, match=r"^refused: the server cannot judge") as refused:
        check(2 * MIB, head("submit_job"))
    assert refused.value.ends_connection  # an admin's refused message ends its connection
    conn.close()
