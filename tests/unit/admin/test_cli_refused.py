"""A stopped server: the CLI and the console fail at once; a Python Session waits by default."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from admin_fakes import write_kit

from fedra.admin import AdminError, Session
from fedra.cli import main
from fedra.poc import prepare


def _run(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_the_cli_and_the_console_do_not_wait_for_a_refusing_server(
    kit_dir: Path, fake_connect: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run("job", "list", "--kit", str(kit_dir)) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("bye\n"))
    assert _run("admin", "--kit", str(kit_dir)) == 0
    assert [call["retry_refused"] for call in fake_connect] == [False, False]
    with Session.connect(kit_dir):
        pass
    assert fake_connect[-1]["retry_refused"] is True


def test_with_an_overseer_the_cli_keeps_trying_through_a_cutover(
    tmp_path: Path, fake_connect: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    overseer = {"name": "overseer", "host": "localhost", "port": 8443, "url": "https://x:8443/api"}
    kit = write_kit(tmp_path / "ha-kit", overseer=overseer)
    answer = ("localhost:8003", "server")
    monkeypatch.setattr("fedra.admin.session._hot_admin_target", lambda _kit: answer)
    assert _run("job", "list", "--kit", str(kit)) == 0
    assert fake_connect[-1]["retry_refused"] is True


def test_a_stopped_poc_server_is_said_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = prepare(tmp_path / "poc", 1, fed_port=_closed_port(), admin_port=_closed_port())
    started = time.monotonic()
    code = _run("job", "list", "--kit", str(layout.admin))
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code != 0
    assert "nothing listens on that port" in err and "gave up" not in err, err
    assert elapsed < 8, elapsed  # the connect timeout is 10 s
    with pytest.raises(AdminError, match="gave up after 1 s"):
        Session.connect(layout.admin, timeout=1)  # a script may wait for a starting server


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
