"""Starting and ending child processes: each in its own process group, ended by group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedra.runtime.isolation import JobUser

# First among the parents' imports that matter: it turns on gRPC's handshake trace in a server
# or site parent, which works only before gRPC is imported (see fedra.host.stderr_log).
from fedra.host import stderr_log

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
    if refused is None:
        refused = lock_refused(root)
    return root if refused is None else refused


def lock_refused(root: Path) -> int | None:
    """Take the kit's lock for the life of this process (one running copy per kit); if
    another process holds it, print why and return the exit code. Nothing else is touched."""
    from fedra.host.daemon import AlreadyRunning, hold_kit_lock

    try:
        hold_kit_lock(root)
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # e.g. a kit folder this user cannot write
        print(f"error: cannot lock {root / 'daemon.lock'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return None


def parent_ready(root: Path, shutdown: Callable[[], None]) -> None:
    """What every parent process does once its kit is loaded: log to ``log.txt`` and stdout
    (its standard error too, gRPC's refused handshakes included), return model-sized buffers
    to the system, stop cleanly on SIGTERM/SIGINT, write pid.fl (informational)."""
    import signal as signals

    from fedra.core import release_large_buffers
    from fedra.host.logs import log_to_folder
    from fedra.runtime.isolation import announce

    log_to_folder(root)
    stderr_log.capture_stderr()
    announce()  # who job processes run as, and what job code can reach (logged)
    release_large_buffers(ROUTER_MMAP_THRESHOLD)
    signals.signal(signals.SIGTERM, lambda *_: shutdown())
    signals.signal(signals.SIGINT, lambda *_: shutdown())
    (root / "pid.fl").write_text(str(os.getpid()))


class JobListener(socket.socket):
    """The listening Unix socket a job process connects to, in a private temporary folder.

    The folder (mode 0700, prefix e.g. ``fedra-sj-``) holds only the socket at :attr:`path`.
    The job process connects once; :meth:`close` (in a ``finally``, once the job connected or
    failed to) also removes the folder, so none outlives the start of its job. (A socket under
    the participant's own folder would often pass the 107-byte limit of a socket's path.)
    """

    def __init__(self, prefix: str, name: str) -> None:
        super().__init__(socket.AF_UNIX, socket.SOCK_STREAM)
        self.folder = tempfile.mkdtemp(prefix=prefix)
        self.path = os.path.join(self.folder, name)
        # Also when close() is never reached (a failed spawn): once this object is gone.
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        try:
            self.bind(self.path)
            self.listen(16)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop listening and remove the folder."""
        super().close()
        self._remove()
