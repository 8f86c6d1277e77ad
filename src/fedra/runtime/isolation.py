"""Job processes cannot touch their participant: a user of their own, a kit they cannot read.

A job's code (a training script, a custom class) runs in the job processes: the server job
process and the site job processes, and whatever they start. When the parent process runs as
root, those processes run as the unprivileged system user :data:`JOB_USER` (created with
``useradd`` when missing), with no other groups and umask 077 (:func:`command_as`), and the
parent locks its kit down first:

- the kit's ``startup/`` (keys), ``local/`` (policies), ``spool/``, logs and every other entry
  are readable by the parent only; the folders on the way to the job's workspace are
  searchable (``--x``) but not listable;
- other jobs' folders are the parent's only (a job's folder is handed back to root when it
  ends); the job's own workspace belongs to the job user;
- the job process gets a copy of what it may read from the kit (the HE contexts of
  ``startup/``, ``local/privacy.json``), never a private key (``*.key``), and its Unix socket
  in a folder only it and the parent can enter.

When the parent is not root, it cannot switch users: job processes run with the parent's
rights, and job code can read the kit (keys included) and change ``local/``. The parent says
so in its log when it starts. Where the job user cannot be made (no ``useradd``, an error),
the parent says why and runs jobs with its own rights.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fedra.isolation")

#: The name of each job's kit copy in the temp folder starts with this and the parent's pid.
VIEW_PREFIX = "fedra-kit-"
#: The system user job processes run as when the parent is root.
JOB_USER = "fedra-job"
#: What job code can do when the parent is not root (logged at start; see docs/security.md).
NOT_ROOT = (
    "this participant does not run as root, so its job processes run as its own user: job "
    "code (BYOC) can read this kit (startup/ keys included), change local/ policies and "
    "other jobs' folders; run it as root to give job processes a user of their own ({user})"
)


@dataclass(frozen=True)
class JobUser:
    """The unprivileged user job processes run as."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class JobLaunch:
    """How a parent starts one job process: the kit folder to give it (``--kit``), the user
    it runs as (None: the parent's own) and its environment."""

    kit: Path
    user: JobUser | None
    env: dict[str, str]


_DECIDED: list[JobUser | None] = []  # the decision, once made
#: The kit copy made for each job folder (see prepare_job), removed by reclaim.
_VIEWS: dict[Path, Path] = {}
_VIEWS_LOCK = threading.Lock()
_DECIDING = threading.Lock()


def announce() -> None:
    """Decide who job processes run as, and say it in the log, without holding up the start
    (a thread: the first job waits for the decision if it comes first); remove the kit
    copies that parents killed mid-job left behind."""
    threading.Thread(target=job_user, name="job-user", daemon=True).start()
    sweep_views()


def sweep_views(folder: Path | None = None) -> list[Path]:
    """Remove the kit copies (``fedra-kit-<pid>-*`` in the temp folder) of parents that are
    gone: a parent killed mid-job never reached :func:`reclaim`. Copies of live parents stay."""
    removed = []
    for view in Path(folder or tempfile.gettempdir()).glob(f"{VIEW_PREFIX}*-*"):
        pid = view.name[len(VIEW_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or view.is_symlink() or not view.is_dir():
            continue
        shutil.rmtree(view, ignore_errors=True)
        removed.append(view)
    if removed:
        log.info("removed %d kit copies of job processes whose parent is gone", len(removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_user() -> JobUser | None:
    """The job user when this process is root and the user exists or can be made; else None
    (the reason is logged). Decided once per process."""
    with _DECIDING:
        if not _DECIDED:
            _DECIDED.append(_decide())
        return _DECIDED[0]


def _decide() -> JobUser | None:
    if os.geteuid() != 0:
        log.warning(NOT_ROOT.format(user=JOB_USER))
        return None
    try:
        user = _find_or_make(JOB_USER)
        _searchable(_python_paths(), "job processes can run this Python")
        _probe(user)
    except OSError as exc:
        log.warning(
            "job processes run as root, with this participant's rights (job code can read "
            "its keys and change local/): %s",
            exc,
        )
        return None
    log.info(
        "job processes run as the unprivileged user %s (uid %d): they cannot read this kit's "
        "startup/, local/ or other jobs' folders",
        user.name,
        user.uid,
    )
    return user


def _find_or_make(name: str) -> JobUser:
    """The system user ``name``, made with ``useradd`` when missing (OSError: cannot)."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    detail = ""
    for _ in range(10):  # parents starting together race for /etc/passwd's lock
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            if entry.pw_uid == 0 or entry.pw_gid == 0:
                raise OSError(f"the user {name} has root's uid or gid")
            return JobUser(name, entry.pw_uid, entry.pw_gid)
        nologin = shutil.which("nologin") or "/usr/sbin/nologin"
        command = [useradd, "--system", "--user-group", "--no-create-home"]
        command += ["--home-dir", "/nonexistent", "--shell", nologin, name]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise OSError(f"cannot create the user {name} ({useradd}: {exc.strerror})") from exc
        if done.returncode == 0:
            log.info("created the system user %s for job processes", name)
            continue
        detail = (done.stderr or done.stdout).strip()
        time.sleep(0.2)
    raise OSError(f"cannot create the user {name} with useradd: {detail}")


#: Run by a fresh interpreter as root: drop to the job user, then exec the command. The
#: parent itself never forks to switch users (a fork of a process running gRPC's threads can
#: crash in gRPC's fork handlers; a plain spawn uses vfork and runs none).
_DROP = (
    "import os, sys; os.setgroups([]); os.setgid(int(sys.argv[2])); "
    "os.setuid(int(sys.argv[1])); os.umask(0o077); os.execv(sys.argv[3], sys.argv[3:])"
)


def command_as(user: JobUser, argv: Sequence[str]) -> list[str]:
    """``argv`` (a program path first) run as ``user``, with no other groups, umask 077."""
    return [sys.executable, "-I", "-S", "-c", _DROP, str(user.uid), str(user.gid), *argv]


def _python_paths() -> list[Path]:
    """Where this Python and what job processes import live (the job user must reach them):
    the interpreter, its prefixes, fedra, the site-packages folders and the entries of
    ``PYTHONPATH`` (job processes inherit it). Not the rest of this process's ``sys.path``
    (its working folder, a test runner's root): job processes start elsewhere, with ``-m``."""
    import site

    import fedra

    paths = [Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix)]
    paths += [Path(fedra.__file__).resolve().parent]
    paths += [Path(entry) for entry in site.getsitepackages() if os.path.isdir(entry)]
    extra = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    paths += [Path(entry) for entry in extra if os.path.isabs(entry)]
    return paths


def _searchable(paths: list[Path], why: str) -> None:
    """Give others the search right (``--x``: no listing) on the folders above ``paths``
    that lack it, each logged: without it the job user cannot reach what lies below."""
    for path in paths:
        for folder in path.parents:
            with contextlib.suppress(OSError):
                mode = stat.S_IMODE(folder.stat().st_mode)
                if not mode & 0o001:
                    os.chmod(folder, mode | 0o001)
                    log.warning("made %s searchable by others (o+x, no listing) so %s", folder, why)


def _probe(user: JobUser) -> None:
    """Check the job user can run this Python and read fedra and the import path (OSError with
    why not). A bare interpreter checks with the user's own rights: quick, at every start."""
    folders = [str(p) for p in _python_paths()[3:] if p.is_dir()]
    check = "import os, sys; bad = [p for p in sys.argv[1:] if not os.access(p, os.R_OK | os.X_OK)]"
    check += "; print(*bad); sys.exit(1 if bad else 0)"
    try:
        done = subprocess.run(
            command_as(user, [sys.executable, "-I", "-S", "-c", check, *folders]),
            cwd="/",
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise OSError(f"the user {user.name} cannot run {sys.executable}: {exc.strerror}") from exc
    if done.returncode != 0:
        detail = (done.stdout.strip() or done.stderr.strip() or "no output").splitlines()[-1]
        raise OSError(f"the user {user.name} cannot read what Python imports: {detail}")


def prepare_job(
    kit_root: Path, workdir: Path, sock_dir: Path, env: Mapping[str, str] | None = None
) -> JobLaunch:
    """Make ready to start a job process that works in ``workdir`` and talks to the parent
    over a socket in ``sock_dir`` (already listening).

    Always: a copy of what the job may read from the kit goes to a temporary folder (the
    ``--kit`` to give the job process; :func:`reclaim` removes it). As root with a job user:
    the kit is locked down, the workspace handed to the job user, and the socket folder and
    the kit copy opened to it only.
    """
    user = job_user()
    view = _kit_view(kit_root, Path(tempfile.mkdtemp(prefix=f"{VIEW_PREFIX}{os.getpid()}-")))
    with _VIEWS_LOCK:
        _VIEWS[workdir] = view
    environment = dict(os.environ if env is None else env)
    if user is None:
        return JobLaunch(view, None, environment)
    _lock_down(kit_root, workdir, user)
    _hand_over(workdir, user)
    for path in (sock_dir, *sock_dir.rglob("*"), view, *view.rglob("*")):
        os.chown(path, 0, user.gid, follow_symlinks=False)
        private = stat.S_ISSOCK(path.lstat().st_mode)
        os.chmod(path, 0o660 if private else (0o750 if path.is_dir() else 0o640))
    environment.update(HOME=str(workdir), USER=user.name, LOGNAME=user.name)
    return JobLaunch(view, user, environment)


def reclaim(workdir: Path) -> None:
    """Hand a job's folder back to the parent once its processes are gone (as root only):
    later jobs cannot read it. The copy of the kit made for the job is removed."""
    with _VIEWS_LOCK:
        view = _VIEWS.pop(workdir, None)
    if view is not None:
        shutil.rmtree(view, ignore_errors=True)
    if job_user() is None or not workdir.is_dir():
        return
    for path in _walk(workdir):
        with contextlib.suppress(OSError):
            os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(workdir, 0o700)


def _kit_view(kit_root: Path, view: Path) -> Path:
    """Copy what job processes read from the kit: ``startup/`` without private keys (HE
    contexts, certificates) and ``local/privacy.json``."""
    (view / "startup").mkdir(parents=True, exist_ok=True)
    (view / "local").mkdir(exist_ok=True)
    startup = kit_root / "startup"
    for source in sorted(startup.iterdir()) if startup.is_dir() else []:
        if source.is_file() and not source.is_symlink() and source.suffix != ".key":
            shutil.copyfile(source, view / "startup" / source.name)
    privacy = kit_root / "local" / "privacy.json"
    if privacy.is_file():
        shutil.copyfile(privacy, view / "local" / "privacy.json")
    return view


def _lock_down(kit_root: Path, workdir: Path, user: JobUser) -> None:
    """Only the parent reads the kit; the folders on the way to ``workdir`` stay searchable.

    A ``workdir`` outside the kit is a server job's workspace in a job store elsewhere
    (``<store>/jobs/<id>/workspace``): that store is locked down like the kit. Folders of
    jobs running now (the job user's, or holding an entry of the job user's) are left alone.
    """
    area = kit_root if workdir.is_relative_to(kit_root) else workdir.parents[2]
    _close_entries(kit_root, workdir, user)
    for folder in workdir.parents:
        if folder.is_relative_to(area):
            _close_entries(folder, workdir, user)
            mode = stat.S_IMODE(folder.stat().st_mode)
            os.chmod(folder, (mode & ~0o066) | 0o011)  # noqa: S103 (search only, no listing)
    _searchable([area], "job processes reach their folders")


def _close_entries(folder: Path, keep: Path, user: JobUser) -> None:
    """Take group and others' rights off every entry of ``folder`` but the one toward ``keep``
    and those of running jobs."""
    for entry in folder.iterdir():
        if keep == entry or keep.is_relative_to(entry):
            continue
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
            continue
        if not _in_use(entry, info, user):
            os.chmod(entry, stat.S_IMODE(info.st_mode) & ~0o077)


def _in_use(entry: Path, info: os.stat_result, user: JobUser) -> bool:
    """Whether ``entry`` is (or holds) a running job's folder: the job user's."""
    if info.st_uid == user.uid:
        return True
    if not stat.S_ISDIR(info.st_mode):
        return False
    try:
        return any(child.lstat().st_uid == user.uid for child in entry.iterdir())
    except OSError:
        return False


def _hand_over(workdir: Path, user: JobUser) -> None:
    """Give the job's folder to the job user. Only the parent's own entries change hands, and
    never a file with other hard links (one a job could have linked to a file elsewhere)."""
    for path in _walk(workdir):
        info = path.lstat()
        if info.st_uid != 0 or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
            continue
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
    os.chmod(workdir, 0o700)


def _walk(top: Path) -> list[Path]:
    """``top`` and everything below it, links not followed."""
    found = [top]
    for parent, dirs, files in os.walk(top, followlinks=False):
        found += [Path(parent) / name for name in dirs + files]
    return found
