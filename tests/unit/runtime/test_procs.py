"""Child processes in their own group, ended by group; the job socket's private folder; a
parent's first checks (the kit's signature, its lock). The processes here are tiny Python
children this test starts, and ends by PID or process group."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.host.daemon import AlreadyRunning
from fedra.pki import Identity, create_ca, sign_kit, write_participant
from fedra.runtime import procs

# A leader that starts a grandchild in its own process group, says both PIDs on stdout (the
# grandchild keeps stdout open: its end is EOF there) and then waits, or exits at once. Both
# read the test's stdin pipe, so neither ends by itself while the test holds it open.
LEADER = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    if sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN) if sys.argv[1] == 'ignore' else None; sys.stdin.read()", sys.argv[1]],
    )  # its stdin is the leader's: the test's pipe, open until the test closes it
    print(os.getpid(), child.pid, flush=True)
    if sys.argv[1] == "exit":
        os._exit(7)
    sys.stdin.read()
    """
)


def _leader(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    """A leader in a session of its own (as ``spawn`` starts one) and its grandchild's PID."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LEADER, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()  # blocks until both processes exist
    assert int(line[0]) == proc.pid
    return proc, int(line[1])


def _all_ended(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    """Whether every holder of the leader's stdout (leader and grandchild) is gone: EOF."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(ready) and proc.stdout.read() == b""


@contextlib.contextmanager
def _cleanup(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """End the group if the test fails before end_group did (only this test's processes)."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_end_group_ends_the_leader_and_what_it_started() -> None:
    proc, grandchild = _leader("wait")
    with _cleanup(proc):
        assert os.getpgid(grandchild) == proc.pid  # the grandchild is in the leader's group
        assert procs.end_group(proc, grace=30) == -signal.SIGTERM
        assert _all_ended(proc)


def test_end_group_kills_a_group_that_ignores_sigterm_after_the_grace() -> None:
    proc, _ = _leader("ignore")
    with _cleanup(proc):
        assert procs.end_group(proc, grace=0.2) == -signal.SIGKILL
        assert _all_ended(proc)


def test_end_group_ends_the_group_of_a_leader_that_already_exited() -> None:
    proc, grandchild = _leader("exit")
    with _cleanup(proc):
        assert proc.wait() == 7
        assert os.getpgid(grandchild) == proc.pid  # left behind in the group
        assert procs.end_group(proc, grace=30) == 7
        assert _all_ended(proc)


def test_spawn_starts_a_module_in_a_new_session_and_appends_to_its_log(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(
        "import os, sys\n"
        "me = os.getpid()\n"
        "print(os.getsid(0) == me, os.getpgid(0) == me, sys.argv[1:], flush=True)\n"
        "print(os.environ.get('PROBE'), 'HOME' in os.environ, sys.stdin.read() == '', flush=True)\n"
        "print('oops', file=sys.stderr)\n"
    )
    log_path = tmp_path / "logs" / "deep" / "job.log"  # its folders are made
    log_path.parent.mkdir(parents=True)
    log_path.write_text("earlier\n")
    env = {"PROBE": "yes", "PATH": os.environ.get("PATH", "")}
    proc = procs.spawn("probe", ["a", "b"], log_path, cwd=tmp_path, env=env)
    try:
        assert proc.wait(60) == 0
    finally:
        procs.end_group(proc, grace=5)
    assert log_path.read_text().splitlines() == [
        "earlier",
        "True True ['a', 'b']",
        "yes False True",  # the whole environment is the one given, stdin is empty
        "oops",  # standard error goes to the same log
    ]


def test_spawn_makes_the_logs_folder(tmp_path: Path) -> None:
    log_path = tmp_path / "new" / "folder" / "out.log"
    proc = procs.spawn("this_module_does_not_exist_here", [], log_path, cwd=tmp_path)
    try:
        assert proc.wait(60) == 1
    finally:
        procs.end_group(proc, grace=5)
    assert "No module named this_module_does_not_exist_here" in log_path.read_text()


# -- the job socket ------------------------------------------------------------------------
def test_the_job_listener_lives_in_a_private_folder_that_close_removes() -> None:
    listener = procs.JobListener("fedra-test-", "job.sock")
    folder = Path(listener.folder)
    try:
        assert folder.name.startswith("fedra-test-")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert [p.name for p in folder.iterdir()] == ["job.sock"]
        assert stat.S_ISSOCK(Path(listener.path).lstat().st_mode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as job:
            job.connect(listener.path)  # it listens already
            accepted, _ = listener.accept()
            accepted.sendall(b"hi")
            assert job.recv(2) == b"hi"
            accepted.close()
    finally:
        listener.close()
    assert not folder.exists()
    listener.close()  # twice is harmless


def test_a_job_listener_that_cannot_bind_leaves_no_folder(tmp_path: Path) -> None:
    before = set(Path(procs.tempfile.gettempdir()).glob("fedra-unbound-*"))
    with pytest.raises(OSError):
        procs.JobListener("fedra-unbound-", "x" * 200)  # past the 107 bytes of a socket path
    assert set(Path(procs.tempfile.gettempdir()).glob("fedra-unbound-*")) == before


def test_a_job_listener_never_closed_removes_its_folder_once_gone() -> None:
    listener = procs.JobListener("fedra-test-", "job.sock")
    folder = Path(listener.folder)
    assert folder.is_dir()
    socket.socket.close(listener)  # the socket alone, as a failed spawn might leave it
    del listener
    gc.collect()
    assert not folder.exists()


# -- reading the end of a log --------------------------------------------------------------
def test_tail_gives_the_last_lines_of_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"".join(b"line %d \xff\n" % i for i in range(100_000)))  # ~1.3 MB
    last = procs.tail(path, lines=3).splitlines()
    assert last == [f"line {i} \ufffd" for i in (99_997, 99_998, 99_999)]
    assert procs.tail(tmp_path / "missing.txt") == ""
    assert procs.tail(tmp_path) == ""  # a folder is unreadable as a file


# -- a parent's first checks ----------------------------------------------------------------
def _signed_kit(tmp_path: Path) -> Path:
    ca = create_ca("procs-tests")
    kit = tmp_path / "site-1"
    write_participant(
        kit / "startup", ca, Identity("site-1", "org-a", "client"), file_stem="client"
    )
    (kit / "startup" / "fed_client.json").write_text('{"name": "site-1", "server_host": "h"}')
    sign_kit(kit, ca)
    return kit


def test_an_intact_kit_passes_a_changed_one_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = _signed_kit(tmp_path)
    assert procs.kit_refused(kit) is None
    (kit / "startup" / "fed_client.json").write_text('{"name": "site-1", "server_host": "evil"}')
    code = procs.kit_refused(kit)
    assert isinstance(code, int) and code != 0
    err = capsys.readouterr().err
    assert err.startswith(f"error: refusing to start from the kit {kit}: ")
    assert "fed_client.json" in err


def test_a_kit_locked_by_another_process_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = os.open(tmp_path / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another holder
        assert procs.lock_refused(tmp_path) == AlreadyRunning.exit_code
    finally:
        os.close(holder)
    assert capsys.readouterr().err.startswith("error: ")


def test_a_kit_that_cannot_be_locked_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert procs.lock_refused(tmp_path / "no-such-kit") == 1
    err = capsys.readouterr().err
    assert f"error: cannot lock {tmp_path / 'no-such-kit' / 'daemon.lock'}" in err


def test_parent_kit_needs_a_kit_and_refuses_a_tampered_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        procs.parent_kit([], "a parent")
    assert usage.value.code == 2 and "--kit" in capsys.readouterr().err
    kit = _signed_kit(tmp_path)
    (kit / "startup" / "extra.txt").write_text("added after signing")
    code = procs.parent_kit(["--kit", str(kit)], "a parent")
    assert isinstance(code, int) and code != 0
    assert "extra.txt" in capsys.readouterr().err
    assert not (kit / "daemon.lock").exists()  # refused before the lock is taken
