"""The parents' readers refuse a malformed message with a log line naming the peer and read
on: the server parent's reader of a site, and the site parent's reader of the server."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fedra.protocol import (
    AbortJob,
    EndJob,
    Heartbeat,
    JobState,
    Log,
    MayUpload,
    Reply,
    Request,
    Result,
    ResultRefused,
    StartJob,
    Task,
)
from fedra.runtime.server_records import SiteHandle
from fedra.runtime.server_sites import serve_site
from fedra.runtime.site_parent import SiteParent
from fedra.runtime.site_resources import SiteResourceBook
from fedra.scheduler import SiteResources
from fedra.transport import ChannelClosed, PeerIdentity
from fedra.wire import Envelope
from tests.unit.runtime.conftest import routing_server


class FakeConn:
    """Hands out the given envelopes, records what is sent, then ends."""

    def __init__(self, envelopes: list[Envelope], peer: PeerIdentity | None = None) -> None:
        self._envelopes = list(envelopes)
        self.sent: list[Envelope] = []
        self.peer = peer or PeerIdentity("site-b", "org-b", "client")
        self.closed = False
        self.last_heard = 0.0

    def recv(self, timeout: float | None = None) -> Envelope:
        if not self._envelopes:
            raise ChannelClosed("no more")
        return self._envelopes.pop(0)

    def send(self, env: Envelope) -> None:
        self.sent.append(env)

    def close(self) -> None:
        self.closed = True


def test_the_server_parent_reads_on_after_malformed_site_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sp = routing_server()
    conn = FakeConn(
        [
            Envelope(Heartbeat.KIND, {"jobs": 5}),
            Envelope(Log.KIND, {"job_id": "j", "key": "loss", "value": "abc"}),
            Envelope(MayUpload.KIND, {"id": 3, "job_id": "j"}),
            Envelope(JobState.KIND, {"job_id": "j", "state": 1}),
            Envelope(Result.KIND, {"job_id": "j", "task_name": "train"}),
            Envelope("welcome", {"server": "x"}),
            Envelope(Heartbeat.KIND, {"jobs": ["stale-job"]}),
        ]
    )
    caplog.set_level(logging.INFO, "fedra.server")
    handle = SiteHandle("site-b", "org-b", conn)  # type: ignore[arg-type]
    sp.sites["site-b"] = handle  # admitted (fedra.runtime.peers.admit_site)
    serve_site(sp, handle)
    for why in [
        "from site site-b: heartbeat: Expected `array`, got `int`",
        "refused a malformed 'log' message from site site-b: log: Expected `float`, got `str`",
        "from site site-b: may_upload: Expected `str`, got `int`",
        "from site site-b: job_state: Expected `str`, got `int`",
        "from site site-b: result: Object missing required field `task_id`",
        "refused a malformed 'welcome' message from site site-b: a 'welcome' message is not "
        "expected here",
    ]:
        assert why in caplog.text
    # The last heartbeat was read: the server told the site to end the job it no longer runs.
    assert [e.headers for e in conn.sent if e.kind == AbortJob.KIND] == [
        {"job_id": "stale-job", "reason": ""}
    ]
    assert "site-b" not in sp.sites  # it has left


def site_parent(tmp_path: Path) -> SiteParent:
    sp = SiteParent.__new__(SiteParent)  # no certificate, spool or overseer
    kit = SimpleNamespace(name="site-a", heartbeat_interval=60.0, root=tmp_path)
    sp._setup(kit, SiteResourceBook("site-a", SiteResources(num_cpus=2)))  # type: ignore[arg-type]
    return sp


def test_the_site_parent_reads_on_after_malformed_server_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sp = site_parent(tmp_path)
    conn = FakeConn(
        [
            Envelope(StartJob.KIND, {"job_id": "j", "sites": "site-a"}),
            Envelope(Task.KIND, {"job_id": "j", "task_name": "train"}),
            Envelope(EndJob.KIND, {"job_id": ["j"]}),
            Envelope("go", {}),
            Envelope(Request.KIND, {"id": "r1", "cmd": "tail", "args": {"lines": "abc"}}),
            Envelope(Request.KIND, {"id": "r3", "cmd": 7}),
            Envelope(ResultRefused.KIND, {"job_id": "j", "task_id": "t", "error": "wrong shape"}),
            Envelope(Task.KIND, {"job_id": "j", "task_id": "t2", "task_name": "train"}),
            Envelope(Request.KIND, {"id": "r2", "cmd": "nothing-such"}),
        ],
        PeerIdentity("server1", "central", "server"),
    )
    caplog.set_level(logging.INFO, "fedra.site")
    sp._serve(conn)  # type: ignore[arg-type]
    for why in [
        "refused a malformed 'start_job' message from the server: start_job: Expected `array`",
        "refused a malformed 'task' message from the server: task: Object missing required "
        "field `task_id`",
        "refused a malformed 'end_job' message from the server: end_job: Expected `str`",
        "refused a malformed 'go' message from the server: a 'go' message is not expected here",
        "refused request 'tail' from the server: tail: lines must be a positive integer",
        "refused request 7 from the server: malformed: request: Expected `str`",
        "the server refused our result for task t of job j: wrong shape",
    ]:
        assert why in caplog.text
    replies: list[Any] = [e.headers for e in conn.sent if e.kind == Reply.KIND]
    assert [r["id"] for r in replies] == ["r1", "r3", "r2"]
    assert replies[-1]["id"] == "r2" and "unknown request" in replies[-1]["error"]
    # The well-formed task for a job not running here got an error result, and read on.
    results: list[Any] = [e.headers for e in conn.sent if e.kind == Result.KIND]
    assert [(r["task_id"], r["error"]) for r in results] == [("t2", "job j is not running here")]
