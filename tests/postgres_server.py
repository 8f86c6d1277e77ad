"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, start, stop, remove.

The server listens on a free port of 127.0.0.1 (password authentication) and on a Unix socket
inside its own folder. PostgreSQL refuses to run as root, so when the tests run as root the
server runs as the ``postgres`` user (or ``nobody``) and the folder is handed to that user.
Missing binaries are an error that says what to install, never a silent skip.

Everything is ended by its own data folder and pid (``pg_ctl stop``, then the postmaster's pid
from ``postmaster.pid``), never by process name.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where Debian's ``postgresql`` package puts the server binaries (one folder per version).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Environment variable naming a folder with initdb and pg_ctl (overrides the search).
BIN_ENV = "FEDRA_PG_BIN"
USER = "fedra"
INSTALL_HINT = (
    "install the server with `sudo bash scripts/install-postgres.sh` (Debian/Ubuntu: "
    "`apt-get install -y postgresql`) or set FEDRA_PG_BIN to a folder holding initdb and pg_ctl"
)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server does not start."""


def find_bin_dir(env: dict[str, str] | None = None) -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; PostgresUnavailable if there is none."""
    env = dict(os.environ) if env is None else env
    if env.get(BIN_ENV):
        candidates = [Path(env[BIN_ENV])]
    else:
        found = sorted(
            Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")),
            key=lambda p: _version_key(p.parent.name),
            reverse=True,
        )
        on_path = shutil.which("pg_ctl", path=env.get("PATH"))
        candidates = found + ([Path(on_path).parent] if on_path else [])
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    looked = ", ".join(str(c) for c in candidates) or f"{DEBIAN_BIN_GLOB} and PATH"
    raise PostgresUnavailable(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found (looked in {looked}): "
        + INSTALL_HINT
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A running throwaway server; :meth:`dsn` names a database on it."""

    folder: Path
    port: int
    password: str
    bin_dir: Path
    uid: int | None
    gid: int | None

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.folder / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname`` over TCP with password authentication."""
        return (
            f"host=127.0.0.1 port={self.port} dbname={dbname} user={USER} "
            f"password={self.password} connect_timeout=10"
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the server's user; a PostgresUnavailable with its output."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        result = subprocess.run(
            command,
            cwd=self.folder,
            env={**os.environ, "HOME": str(self.folder), "LC_ALL": "C"},
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log_tail()}"
            )
        return result

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = (self.folder / "server.log").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "server log:\n" + "\n".join(text.splitlines()[-lines:])

    def postmaster_pid(self) -> int | None:
        """The pid in ``data/postmaster.pid`` while the server runs, else None."""
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None


def _run_as() -> tuple[int | None, int | None]:
    """The uid and gid the server runs as: ours, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable(
        "the tests run as root and PostgreSQL refuses to: no `postgres` or `nobody` user to run "
        "it as"
    )


def _start(server: PostgresServer) -> None:
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.folder} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
    )
    server.run(
        "pg_ctl",
        "start",
        "-D",
        str(server.data),
        "-l",
        str(server.folder / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
    )


def _stop(server: PostgresServer) -> None:
    """Stop the server by its data folder, then by its own pid if it still runs."""
    if server.postmaster_pid() is None:
        return
    with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
        server.run("pg_ctl", "stop", "-D", str(server.data), "-m", "fast", "-w", "-t", "30")
    pid = server.postmaster_pid()
    if pid is None:
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):  # immediate shutdown, then the hard way
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped by init does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway server; stop it and remove its folder afterwards, even on failure."""
    bin_dir = find_bin_dir()
    uid, gid = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="fedra-pg-"))
    try:
        if uid is not None and gid is not None:
            os.chown(folder, uid, gid)
        password = secrets.token_hex(16)
        server = PostgresServer(folder, 0, password, bin_dir, uid, gid)
        pwfile = folder / "pwfile"
        pwfile.write_text(password + "\n")
        if uid is not None and gid is not None:
            os.chown(pwfile, uid, gid)
        server.run(
            "initdb",
            "-D",
            str(server.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        pwfile.unlink()
        try:
            for attempt in range(3):  # the free port may be taken before the server binds it
                server.port = free_port()
                try:
                    _start(server)
                    break
                except PostgresUnavailable:
                    if attempt == 2 or "in use" not in server.log_tail():
                        raise
            yield server
        finally:
            _stop(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
