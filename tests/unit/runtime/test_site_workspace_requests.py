"""A site answers ``ls``, ``head``, ``grep``, ``pwd`` and ``env`` itself, confined and bounded
whatever the server relayed (defence in depth), and every hostile request is one refusal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from fedra.core.admin_results import EnvInfo, Listing, Workspace
from tests.unit.runtime.test_site_requests import JOB, ask, site


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "client.key").write_text("PRIVATE KEY")
    (tmp_path / "log.txt").write_text("site up\nERROR one\nok\nERROR two\n")
    job = tmp_path / "jobs" / JOB
    job.mkdir(parents=True)
    (job / "log.txt").write_text("job log\n")
    os.symlink(tmp_path / "startup", job / "keys")
    return tmp_path


def test_ls_lists_the_log_and_the_job_folders_and_never_follows_links(kit: Path) -> None:
    root = ask(site(kit), "ls", {"path": ""})
    listing = msgspec.convert(root["data"], Listing)
    assert [(e.name, e.kind) for e in listing.entries] == [(JOB, "dir"), ("log.txt", "file")]
    inside = msgspec.convert(
        ask(site(kit), "ls", {"path": JOB, "recursive": True})["data"], Listing
    )
    assert {(e.name, e.kind) for e in inside.entries} == {("keys", "link"), ("log.txt", "file")}


@pytest.mark.parametrize(
    ("cmd", "args"),
    [
        ("ls", {"path": "../.."}),
        ("ls", {"path": "startup"}),
        ("ls", {"path": "/etc"}),
        ("ls", {"path": f"{JOB}/keys"}),
        ("ls", {"path": ["x"]}),
        ("head", {"file": "startup/client.key"}),
        ("head", {"file": f"{JOB}/keys/client.key"}),
        ("head", {"file": "log.txt", "lines": "all"}),
        ("grep", {"file": "log.txt", "pattern": "x" * 1000}),
        ("grep", {"file": "log.txt", "pattern": ["x"]}),
        ("grep", {"file": "log.txt", "pattern": "(bad"}),
        ("grep", {"file": f"{JOB}/keys/client.key", "pattern": "PRIVATE"}),
    ],
)
def test_hostile_requests_are_refused_in_one_line(
    kit: Path, cmd: str, args: dict[str, object]
) -> None:
    reply = ask(site(kit), cmd, args)
    assert reply["ok"] is False and "\n" not in reply["error"]
    assert "PRIVATE KEY" not in json.dumps(reply)


def test_head_and_grep_read_the_log(kit: Path) -> None:
    assert ask(site(kit), "head", {"file": "log.txt", "lines": 1})["data"] == {"text": "site up"}
    found = ask(site(kit), "grep", {"file": "log.txt", "pattern": "error", "ignore_case": True})
    assert found["data"] == {"text": "2:ERROR one\n4:ERROR two"}


def test_pwd_and_env_tell_no_secrets(kit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDRA_DB_PASSWORD", "hunter2")
    where = msgspec.convert(ask(site(kit), "pwd", {})["data"], Workspace)
    assert where.name == "site-b" and where.root == str(kit.resolve())
    reply = ask(site(kit), "env", {})
    assert "hunter2" not in json.dumps(reply) and "FEDRA_DB_PASSWORD" not in json.dumps(reply)
    env = msgspec.convert(reply["data"], EnvInfo)
    assert env.resources == {"num_cpus": 2} or (env.resources or {}).get("num_cpus") == 2
