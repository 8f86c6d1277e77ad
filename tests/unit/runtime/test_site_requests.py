"""A site answers every request relayed by the server, however malformed, and stays up (H1).

The site confines ``cat``/``tail`` itself (defence in depth): only its ``log.txt`` and
``jobs/JOB_ID/...`` are readable, whatever the server relayed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fedra.runtime.site_parent import SiteParent
from fedra.wire import Envelope

JOB = "0123abcd"


def site(root: Path) -> Any:
    """What SiteParent._request uses of a site, with the replies it sends collected."""
    sent: list[Envelope] = []
    return SimpleNamespace(
        kit=SimpleNamespace(name="site-b", root=root),
        jobs={},
        resources=None,
        sent=sent,
        _send=sent.append,
        shutdown=lambda code=0: None,
    )


def ask(stub: Any, cmd: object, args: object) -> dict[str, Any]:
    SiteParent._request(stub, {"id": "r1", "cmd": cmd, "args": args})
    reply = stub.sent.pop()
    return dict(reply.headers)


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "client.key").write_text("PRIVATE KEY")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "authorization.json").write_text("{}")
    (tmp_path / "log.txt").write_text("site line 1\nsite line 2\n")
    job = tmp_path / "jobs" / JOB
    job.mkdir(parents=True)
    (job / "log.txt").write_text("job log\n")
    os.link(tmp_path / "startup" / "client.key", job / "hard.key")
    (job / "sym.key").symlink_to(tmp_path / "startup" / "client.key")
    return tmp_path


@pytest.mark.parametrize(
    ("cmd", "args", "error"),
    [
        ("cat", {"file": "x\x00y"}, "control characters"),
        ("cat", {"file": "startup/client.key"}, "not readable"),
        ("cat", {"file": "local/authorization.json"}, "not readable"),
        ("cat", {"file": "../startup/client.key"}, "'..'"),
        ("cat", {"file": "/etc/passwd"}, "absolute"),
        ("cat", {"file": f"{JOB}/hard.key"}, "hard link"),
        ("cat", {"file": f"{JOB}/sym.key"}, "a link"),
        ("cat", {"file": ["log.txt"]}, "non-empty string"),
        ("tail", {"lines": "x"}, "positive integer"),
        ("tail", {"lines": None, "file": 3}, "non-empty string"),
        ("cat", ["not", "an", "object"], "args must be an object"),
        ("reserve", {"job_id": "j", "spec": {}, "ttl": "soon"}, "ValueError"),
        (["cmd"], {}, "unknown request"),
    ],
)
def test_bad_requests_are_refused_with_a_reply_and_a_log_line(
    kit: Path, caplog: pytest.LogCaptureFixture, cmd: object, args: object, error: str
) -> None:
    stub = site(kit)
    with caplog.at_level(logging.WARNING, logger="fedra.site"):
        reply = ask(stub, cmd, args)
    assert reply["ok"] is False and error in reply["error"], reply
    assert "PRIVATE KEY" not in str(reply)
    refusals = [r.getMessage() for r in caplog.records if "refused request" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0]


def test_its_own_log_and_a_jobs_log_are_readable(kit: Path) -> None:
    stub = site(kit)
    assert ask(stub, "tail", {"lines": 1})["data"] == {"text": "site line 2"}
    assert ask(stub, "cat", {"file": f"{JOB}/log.txt"})["data"] == {"text": "job log\n"}
