"""Item 9 / L6: one running copy per kit, and a stop that signals only that copy.

Replayed with the kit's own scripts, as an operator would: a second ``start.sh`` of a running
server, a second parent started by hand, a ``stop_fl.sh`` facing a stale ``daemon_pid.fl``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Federation, make_federation, pid_alive, read, wait_for

pytestmark = pytest.mark.timeout(120)


def _script(folder: Path, name: str) -> subprocess.CompletedProcess[str]:
    # No output captured through pipes: what start.sh starts would hold them open.
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        code = subprocess.run(
            [str(folder / "startup" / name)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            timeout=60,
            check=False,
        ).returncode
    return subprocess.CompletedProcess([name], code, read(out), read(err))


def _end_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not pid_alive(pgid), 15, "the group to end")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[Federation, int]]:
    """A POC server started with its own start.sh; yields it and its process group."""
    fed = make_federation(tmp_path / "poc", 1)
    server = fed.layout.server
    done = _script(server, "start.sh")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: "listening" in fed.log("server"), 60, "the server to listen")
    pgid = int(read(server / "daemon_pid.fl"))
    try:
        yield fed, pgid
    finally:
        _end_group(pgid)


def test_a_second_start_sh_is_refused_and_changes_nothing(
    started: tuple[Federation, int],
) -> None:
    fed, pgid = started
    server = fed.layout.server
    pid = int(read(server / "pid.fl"))

    second = _script(server, "start.sh")
    assert second.returncode != 0
    assert "already running" in second.stderr, second.stderr
    # The first one is untouched: its pid files still name it, it still serves admins.
    assert int(read(server / "daemon_pid.fl")) == pgid
    assert int(read(server / "pid.fl")) == pid and pid_alive(pid)
    with fed.session() as session:
        assert session.server_status().status == "started"
    assert fed.log("server").count("listening") == 1  # no second server got as far

    # By hand, as python -m: refused the same way, nothing written.
    by_hand = subprocess.run(
        [sys.executable, "-m", "fedra.runtime.server_parent", "--kit", str(server)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert by_hand.returncode == 11, by_hand.stderr
    assert "already running" in by_hand.stderr and "nothing was started" in by_hand.stderr
    assert int(read(server / "pid.fl")) == pid and pid_alive(pid)
    assert int(read(server / "daemon_pid.fl")) == pgid

    # And stop_fl.sh stops the real one (its daemon_pid.fl intact), leaving no stale file.
    stopped = _script(server, "stop_fl.sh")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not pid_alive(pid) and not pid_alive(pgid), 30, "the server to stop")
    wait_for(lambda: not (server / "daemon_pid.fl").exists(), 10, "daemon_pid.fl to go")


def test_stop_never_signals_a_process_a_stale_pid_file_names(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "poc", 1)
    server = fed.layout.server
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (server / "daemon_pid.fl").write_text(str(bystander.pid))
        done = _script(server, "stop_fl.sh")
        assert done.returncode == 0, done.stderr
        assert "not running" in done.stdout and "stale" in done.stdout, done.stdout
        assert bystander.poll() is None, "stop_fl.sh signalled a process it does not own"
        assert not (server / "daemon_pid.fl").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_refuses_a_pid_file_that_names_another_process_while_running(
    started: tuple[Federation, int],
) -> None:
    fed, pgid = started
    server = fed.layout.server
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (server / "daemon_pid.fl").write_text(str(bystander.pid))
        done = _script(server, "stop_fl.sh")
        assert done.returncode == 1
        assert f"names {bystander.pid}" in done.stderr and "nothing signalled" in done.stderr
        assert bystander.poll() is None
        assert pid_alive(pgid)
        with fed.session() as session:
            assert session.server_status().status == "started"
    finally:
        bystander.kill()
        bystander.wait()
