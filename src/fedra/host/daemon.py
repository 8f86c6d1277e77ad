"""One running copy per startup kit, and a stop that signals only that copy.

A participant (server, site, overseer) is running while someone holds the kit's lock,
``<kit>/daemon.lock`` (``flock``, released by the kernel when its holders exit, even on
``kill -9``). ``startup/start.sh`` takes it before it starts anything and hands it to
``sub_start.sh`` and the parent process (on file descriptor :data:`LOCK_FD`, named in the
environment variable :data:`LOCK_FD_ENV`); a parent started by hand takes it itself. A second
start of a running participant therefore finds the lock taken, says so and changes nothing.

``daemon_pid.fl`` (the process group of ``sub_start.sh``) and ``pid.fl`` (the parent process)
are only informational. ``startup/stop_fl.sh`` runs :func:`main` ``stop``: it signals the
process group named in ``daemon_pid.fl`` only when the lock is held and that process is this
kit's ``sub_start.sh`` holding the lock; a stale ``daemon_pid.fl`` is reported and removed,
never signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedra.core import FedraError

#: The lock file in the kit's folder; held for as long as the participant runs.
LOCK_FILE = "daemon.lock"
#: The process group of ``sub_start.sh`` (what ``stop_fl.sh`` signals); informational.
DAEMON_PID_FILE = "daemon_pid.fl"
#: The parent process's pid; informational.
PID_FILE = "pid.fl"
#: The descriptor on which start.sh hands its lock down, and the variable that names it.
LOCK_FD = 9
LOCK_FD_ENV = "FEDRA_KIT_LOCK_FD"

_held: list[int] = []  # the lock's descriptor, open for the life of this process


class AlreadyRunning(FedraError):
    """The kit's lock is held: this participant runs already."""

    exit_code = 11


def hold_kit_lock(root: Path) -> None:
    """Take the kit's lock for the life of this process; :class:`AlreadyRunning` if taken.

    A descriptor handed down by start.sh (see the module docstring) is used when it is this
    kit's lock file: it holds the lock already, and ``flock`` on it succeeds.
    """
    path = root / LOCK_FILE
    fd = _inherited(path)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AlreadyRunning(already_running(root)) from None
    os.set_inheritable(fd, False)  # job processes must not keep the participant "running"
    os.environ.pop(LOCK_FD_ENV, None)
    _held.append(fd)


def _inherited(path: Path) -> int | None:
    """The descriptor named by :data:`LOCK_FD_ENV` if it is open on ``path``, else None."""
    value = os.environ.get(LOCK_FD_ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    try:
        mine, theirs = os.fstat(fd), os.stat(path)
    except OSError:
        return None
    return fd if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino) else None


def already_running(root: Path) -> str:
    """The one-line refusal of a second start."""
    pid = read_pid(root / PID_FILE)
    which = f" (pid {pid})" if pid is not None else ""
    return (
        f"{root.name} is already running from {root}{which}: nothing was started or changed; "
        f"stop it first with {root / 'startup' / 'stop_fl.sh'}"
    )


def is_running(root: Path) -> bool:
    """Whether some process holds the kit's lock (the participant runs)."""
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we got it
    return False


def read_pid(path: Path) -> int | None:
    """The positive pid in a pid file, or None (missing, empty, not a number)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def leader_problem(root: Path, pid: int) -> str | None:
    """Why ``pid`` is not this kit's running ``sub_start.sh`` process group; None if it is.

    It must lead its process group, have the kit's lock file open, and run this kit's
    ``startup/sub_start.sh``.
    """
    proc = Path(f"/proc/{pid}")
    try:
        if os.getpgid(pid) != pid:
            return f"process {pid} does not lead a process group"
        lock = os.path.realpath(root / LOCK_FILE)
        fds = _open_files(proc)
        args = (proc / "cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(proc / "cwd")
    except ProcessLookupError:
        return f"no process {pid}"
    except OSError as exc:
        return f"cannot inspect process {pid} ({exc.strerror or exc})"
    if lock not in fds:
        return f"process {pid} does not hold {lock}"
    script = os.path.realpath(root / "startup" / "sub_start.sh")
    if not any(os.path.realpath(os.path.join(cwd, os.fsdecode(a))) == script for a in args if a):
        return f"process {pid} is not {script}"
    return None


def _open_files(proc: Path) -> list[str]:
    """The paths of a process's open descriptors. One that closes while they are listed
    (a process starting up closes many) is left out, not an error."""
    found = []
    for fd in (proc / "fd").iterdir():
        try:
            found.append(os.path.realpath(os.readlink(fd)))
        except FileNotFoundError:
            continue
    return found


@dataclass(frozen=True)
class Stopped:
    """What :func:`stop` did: its exit code and the line it reports."""

    code: int
    message: str


def stop(root: Path, sig: int = signal.SIGTERM) -> Stopped:
    """Signal this kit's running participant (its sub_start.sh process group), checked first.

    Nothing runs: a stale ``daemon_pid.fl`` is removed and reported. Running, but
    ``daemon_pid.fl`` names another process: refused (code 1), nothing is signalled.
    """
    name = root.name
    pid_file = root / DAEMON_PID_FILE
    pid = read_pid(pid_file)
    if not is_running(root):
        if not pid_file.exists():
            return Stopped(0, f"{name} is not running")
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return Stopped(0, f"{name} is not running (removed a stale {DAEMON_PID_FILE}: {pid})")
    if pid is None:
        return Stopped(
            1,
            f"error: {name} is running but {pid_file} names no process (not started by "
            f"start.sh?): nothing signalled; stop the process of {root / PID_FILE} yourself",
        )
    problem = leader_problem(root, pid)
    if problem is not None:
        return Stopped(1, f"error: {name}: {pid_file} names {pid}: {problem}; nothing signalled")
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return Stopped(0, f"{name} has just stopped")
    return Stopped(0, f"stopping {name} (process group {pid})")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedra.host.daemon stop --kit DIR`` (what ``stop_fl.sh`` runs)."""
    parser = argparse.ArgumentParser(description="Stop a Fedra participant, checked first.")
    parser.add_argument("action", choices=["stop"])
    parser.add_argument("--kit", required=True, type=Path, help="the startup kit folder")
    args = parser.parse_args(argv)
    done = stop(args.kit.resolve())
    print(done.message, file=sys.stderr if done.code else sys.stdout)
    return done.code


if __name__ == "__main__":
    sys.exit(main())
