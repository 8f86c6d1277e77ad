"""``fedra system …`` (the console's federation commands as CLI twins) and the console's
``set_timeout``, through ``fedra.cli.main`` and the console against the fake server."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from admin_fakes import FakeServer

from fedra.admin import AdminConsole, Session, UsageError
from fedra.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_system_status_tail_and_restart_are_the_console_commands(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, server: FakeServer, fake_connect: Any
) -> None:
    kit = ["--kit", str(kit_dir)]
    code, out, err = cli(capsys, "system", "status", *kit)
    assert code == 0, err
    assert "Engine status: started" in out and "site-1, site-2" in out
    code, out, _ = cli(capsys, "system", "status", "client", *kit, "--format", "json")
    assert code == 0 and json.loads(out)["sites"][0]["name"] == "site-1"
    code, out, _ = cli(capsys, "system", "tail", "site-1", "-n", "3", *kit)
    assert code == 0 and out.splitlines() == [f"site-1 line {i}" for i in range(3)]
    assert server.requests[-1].headers["args"] == {"participant": "site-1", "lines": 3}
    code, out, _ = cli(capsys, "system", "restart", "client", "site-2", *kit)
    assert code == 0 and "Restart requested: client site-2" in out
    restart = server.requests[-1].headers
    assert (restart["cmd"], restart["args"]) == (
        "restart",
        {"target": "client", "names": ["site-2"]},
    )


def test_system_twins_refuse_bad_arguments_before_connecting(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, server: FakeServer, fake_connect: Any
) -> None:
    code, _, err = cli(capsys, "system", "tail", "site-1", "-n", "999999", "--kit", str(kit_dir))
    assert code != 0 and "lines: expected 1..10000" in err
    code, _, err = cli(capsys, "system", "restart", "everything", "--kit", str(kit_dir))
    assert code != 0 and "target must be one of" in err
    assert server.requests == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["system", "--help"], ["status", "tail", "restart", "grep", "resources"]),
        (["system", "grep", "--help"], ["PATTERN", "Console: grep", "Needs the right: view"]),
        (["system", "ls", "--help"], ["--recursive", "JOB_ID"]),
        (["job", "reset-errors", "--help"], ["manage_job", "show_errors"]),
        (["overseer", "active", "--help"], ["get_active_sp"]),
    ],
)
def test_help_says_what_each_twin_does(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]
) -> None:
    code, out, _ = cli(capsys, *argv)
    assert code == 0
    flat = " ".join(out.split())
    for word in words:
        assert word in flat, (word, out)


def test_set_timeout_changes_the_sessions_reply_timeout(session: Session) -> None:
    stdout = io.StringIO()
    console = AdminConsole(session, stdin=io.StringIO(""), stdout=stdout, stderr=io.StringIO())
    console.handle("set_timeout 7.5")
    assert session.reply_timeout == 7.5
    assert "at most 7.5 s" in stdout.getvalue()
    console.handle("set_timeout 0")
    assert session.reply_timeout == 7.5 and console.exit_code != 0
    with pytest.raises(UsageError, match=r"1\.\.86400"):
        session.set_timeout(10**9)
