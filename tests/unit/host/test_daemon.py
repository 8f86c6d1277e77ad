"""The kit's lock: who runs, a second start refused, a stop that checks what it signals."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.host import daemon
from fedra.host.daemon import AlreadyRunning, hold_kit_lock, is_running, leader_problem, stop
from tests.e2e.conftest import wait_for


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    folder = tmp_path / "site-1"
    (folder / "startup").mkdir(parents=True)
    return folder


@pytest.fixture
def holder(kit: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding the kit's lock (flock(1), in a process group of its own)."""
    proc = subprocess.Popen(
        ["flock", "-n", str(kit / daemon.LOCK_FILE), "sleep", "60"], start_new_session=True
    )
    wait_for(lambda: is_running(kit), 10, "the lock to be held")
    yield proc
    proc.kill()
    proc.wait()


def test_nothing_holds_the_lock_of_a_fresh_kit(kit: Path) -> None:
    assert not is_running(kit)


def test_a_held_lock_refuses_a_second_holder(kit: Path, holder: subprocess.Popen[bytes]) -> None:
    (kit / daemon.PID_FILE).write_text(str(holder.pid))
    with pytest.raises(AlreadyRunning, match=r"already running .* nothing was started"):
        hold_kit_lock(kit)
    assert not daemon._held  # nothing kept open for the refused attempt


def test_a_stale_daemon_pid_file_is_removed_not_signalled(kit: Path) -> None:
    (kit / daemon.DAEMON_PID_FILE).write_text(str(os.getpid()))
    done = stop(kit)
    assert done.code == 0 and "stale" in done.message
    assert not (kit / daemon.DAEMON_PID_FILE).exists()


def test_a_running_kit_whose_pid_file_names_another_process_is_not_signalled(
    kit: Path, holder: subprocess.Popen[bytes]
) -> None:
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (kit / daemon.DAEMON_PID_FILE).write_text(str(bystander.pid))
        done = stop(kit)
        assert done.code == 1 and "nothing signalled" in done.message
        assert "does not hold" in done.message
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_leader_problem_names_what_is_wrong(kit: Path) -> None:
    assert "no process" in str(leader_problem(kit, 2**22 + 1))
    # This test process neither holds the kit's lock nor runs its sub_start.sh.
    assert leader_problem(kit, os.getpid()) is not None


def test_read_pid_takes_only_positive_numbers(tmp_path: Path) -> None:
    path = tmp_path / "pid.fl"
    for text, expected in (("42\n", 42), ("0", None), ("-1", None), ("x", None), ("", None)):
        path.write_text(text)
        assert daemon.read_pid(path) == expected
    assert daemon.read_pid(tmp_path / "missing") is None


def test_a_lock_that_cannot_be_opened_is_a_one_line_refusal(
    kit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedra.runtime.procs import lock_refused

    (kit / daemon.LOCK_FILE).mkdir()  # not a file: open() fails, even for root
    assert lock_refused(kit) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot lock ") and len(err.splitlines()) == 1
