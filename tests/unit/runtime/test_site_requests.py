"""A site answers every request relayed by the server, however malformed, and stays up (H1).

The site confines ``cat``/``tail`` itself (defence in depth): only its ``log.txt`` and
``jobs/JOB_ID/...`` are readable, whatever the server relayed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from fedra.protocol import TO_SITE, BadMessage, Reply, Request, decode
from fedra.runtime.site_requests import SiteDesk, malformed_request
from fedra.runtime.site_resources import SiteResourceBook
from fedra.scheduler import SiteResources
from fedra.wire import Envelope

JOB = "0123abcd"


def site(root: Path) -> SiteDesk:
    """A site's request desk: its folder, resources, no jobs."""
    book = SiteResourceBook("site-b", SiteResources(num_cpus=2))
    return SiteDesk("site-b", root, book, running=list, shutdown=lambda code: None)


def ask(desk: SiteDesk, cmd: object, args: object) -> dict[str, Any]:
    """The reply the site sends to a request, as its shell makes it: decoded first, and a
    request that does not decode refused from its headers."""
    headers = {"id": "r1", "cmd": cmd, "args": args}
    try:
        request = decode(Envelope("request", headers), TO_SITE)
    except BadMessage as exc:
        reply = malformed_request(headers, str(exc))
    else:
        assert isinstance(request, Request)
        reply = desk.answer(request)
    assert isinstance(reply, Reply)
    return {"id": reply.id, "ok": reply.ok, "data": reply.data, "error": reply.error}


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
        ("cat", ["not", "an", "object"], "malformed request: request: Expected `object`"),
        ("reserve", {"job_id": "j", "spec": {}, "ttl": "soon"}, "ValueError"),
        (["cmd"], {}, "malformed request: request: Expected `str`, got `array` - at `$.cmd`"),
        ("nothing-such", {}, "unknown request"),
        ("reserve", {"job_id": "j", "spec": [1]}, "spec must be an object"),
    ],
)
def test_bad_requests_are_refused_with_a_reply_and_a_log_line(
    kit: Path, caplog: pytest.LogCaptureFixture, cmd: object, args: object, error: str
) -> None:
    stub = site(kit)
    with caplog.at_level(logging.WARNING, logger="fedra.site"):
        reply = ask(stub, cmd, args)
    assert reply["ok"] is False and error in reply["error"], reply
    assert reply["id"] == "r1"
    assert "PRIVATE KEY" not in str(reply)
    refusals = [r.getMessage() for r in caplog.records if "refused request" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0]


def test_its_own_log_and_a_jobs_log_are_readable(kit: Path) -> None:
    stub = site(kit)
    assert ask(stub, "tail", {"lines": 1})["data"] == {"text": "site line 2"}
    assert ask(stub, "cat", {"file": f"{JOB}/log.txt"})["data"] == {"text": "job log\n"}
