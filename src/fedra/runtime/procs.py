"""Starting and ending child processes: each in its own process group, ended by group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedra.runtime.isolation import JobUser

#: Seconds a process gets between SIGTERM and SIGKILL.
GRACE = 5.0

#: Allocations from this size up go straight to mmap and back to the system when freed
#: (model-sized buffers); smaller ones, such as the transport's 4 MiB frames, are reused
#: from the heap. A lower threshold made every frame an mmap + page faults + munmap.
ROUTER_MMAP_THRESHOLD = 16 << 20


def spawn(
    module: str,
    args: Sequence[str],
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: JobUser | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m module args`` in a new session, output appended to ``log_path``.

    ``env``: the whole environment of the new process (default: this one's). ``user``: run
    it as that user, with no other groups and umask 077 (see :mod:`fedra.runtime.isolation`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", module, *args]
    if user is not None:
        from fedra.runtime.isolation import command_as

        argv = command_as(user, argv)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def end_group(proc: subprocess.Popen[bytes], grace: float = GRACE) -> int:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; return the exit code.

    Ends everything the process started in its group (user scripts included), also when the
    process itself already exited.
    """
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return proc.wait()


def kit_refused(root: Path) -> int | None:
    """Verify a startup kit's signature; on failure print why and return the exit code.

    Every parent process calls this before anything else: a kit whose signed files were
    changed, removed or added is refused, naming the file.
    """
    from fedra.core import FedraError
    from fedra.pki import verify_kit

    try:
        verify_kit(root)
    except FedraError as exc:
        print(f"error: refusing to start from the kit {root}: {exc}", file=sys.stderr)
        return exc.exit_code
    return None


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' if unreadable)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def parent_kit(argv: Sequence[str] | None, description: str) -> Path | int:
    """Parse ``--kit DIR`` and verify the kit: its folder, or the exit code of a refusal.

    Called first thing in a parent process: it also makes every thread share one malloc
    heap, which must happen before any thread (gRPC's included) has made a heap of its own.
    """
    import argparse

    from fedra.core.memory import share_heaps

    # Frames pass between threads: one heap holds only those in flight, instead of each
    # connection's thread keeping the frames it freed.
    share_heaps(1)

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--kit", required=True, type=Path, help="the startup kit folder")
    root = parser.parse_args(argv).kit.resolve()
    refused = kit_refused(root)
    return root if refused is None else refused


def parent_ready(root: Path, shutdown: Callable[[], None]) -> None:
    """What every parent process does once its kit is loaded: log to ``log.txt`` and stdout,
    return model-sized buffers to the system, stop cleanly on SIGTERM/SIGINT, write pid.fl."""
    import signal as signals

    from fedra.core import release_large_buffers
    from fedra.core.logs import log_to_folder
    from fedra.runtime.isolation import announce

    log_to_folder(root)
    announce()  # who job processes run as, and what job code can reach (logged)
    release_large_buffers(ROUTER_MMAP_THRESHOLD)
    signals.signal(signals.SIGTERM, lambda *_: shutdown())
    signals.signal(signals.SIGINT, lambda *_: shutdown())
    (root / "pid.fl").write_text(str(os.getpid()))
