"""What a parent gives a job process of its kit, and how it hands a job's folder over."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fedra.runtime import isolation

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a job user of its own exists only when the parent is root"
)


def _kit(root: Path) -> Path:
    kit = root / "site-1"
    for folder in ("startup", "local", "jobs/old", "jobs/new/job", "spool"):
        (kit / folder).mkdir(parents=True)
    for name in ("client.key", "client.crt", "rootCA.pem", "he_context.tenseal"):
        (kit / "startup" / name).write_text(name)
    (kit / "local" / "privacy.json").write_text("{}")
    (kit / "local" / "authorization.json").write_text("{}")
    (kit / "log.txt").write_text("log")
    (kit / "jobs" / "old" / "model.npz").write_text("old job's result")
    (kit / "jobs" / "new" / "job" / "meta.json").write_text("{}")
    for path in (kit, *kit.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return kit


def test_the_kit_view_holds_no_private_key_and_no_policy(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    view = isolation._kit_view(kit, tmp_path / "sock" / "kit")
    assert sorted(p.name for p in (view / "startup").iterdir()) == [
        "client.crt",
        "he_context.tenseal",
        "rootCA.pem",
    ]
    assert sorted(p.name for p in (view / "local").iterdir()) == ["privacy.json"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@as_root
def test_the_kit_is_locked_down_and_the_job_gets_its_own_folder(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    workdir = kit / "jobs" / "new"
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    launch = isolation.prepare_job(kit, workdir, sock_dir, {"PATH": "/usr/bin"})
    user = launch.user
    assert user is not None and user.uid != 0
    assert launch.kit.name.startswith("fedra-kit-") and launch.env["HOME"] == str(workdir)
    assert (launch.kit.lstat().st_gid, _mode(launch.kit)) == (user.gid, 0o750)
    for private in ("startup", "local", "spool", "log.txt", "jobs/old"):
        assert _mode(kit / private) & 0o077 == 0, private
    assert _mode(kit) == 0o711 and _mode(kit / "jobs") == 0o711  # searchable, not listable
    for path in (workdir, workdir / "job", workdir / "job" / "meta.json"):
        assert path.lstat().st_uid == user.uid, path
    assert (sock_dir.lstat().st_gid, _mode(sock_dir)) == (user.gid, 0o750)
    isolation.reclaim(workdir)
    assert (workdir / "job" / "meta.json").lstat().st_uid == 0 and _mode(workdir) == 0o700
    assert not launch.kit.exists()  # the job's kit copy goes with the job


@as_root
def test_a_hard_link_in_the_job_folder_never_changes_hands(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    secret = kit / "startup" / "client.key"
    workdir = kit / "jobs" / "new"
    os.link(secret, workdir / "linked.key")  # as a job could have left behind for a resume
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir()
    isolation.prepare_job(kit, workdir, sock_dir)
    assert secret.lstat().st_uid == 0


@as_root
def test_a_running_server_job_keeps_its_way_in_when_another_starts(tmp_path: Path) -> None:
    server = tmp_path / "server1"
    jobs = server / "store" / "jobs"
    for job in ("running", "ended", "new"):
        (jobs / job / "workspace").mkdir(parents=True)
        (jobs / job / "job.zip").write_text("zip")
    (server / "startup").mkdir()
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir()
    first = isolation.prepare_job(server, jobs / "running" / "workspace", tmp_path / "sock")
    assert first.user is not None
    isolation.prepare_job(server, jobs / "new" / "workspace", sock_dir)
    assert _mode(jobs / "running") & 0o001  # its job process still reaches its workspace
    assert _mode(jobs / "ended") & 0o077 == 0
    assert _mode(jobs / "running" / "job.zip") & 0o077 == 0


@as_root
def test_a_command_runs_as_the_job_user_with_no_other_group(tmp_path: Path) -> None:
    import subprocess

    user = isolation.job_user()
    assert user is not None
    script = "import os; print(os.getuid(), os.getgid(), os.getgroups(), oct(os.umask(0)))"
    done = subprocess.run(
        isolation.command_as(user, [sys.executable, "-c", script]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [str(user.uid), str(user.gid), "[]", "0o77"]


def test_kit_copies_of_parents_that_are_gone_are_swept(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"{isolation.VIEW_PREFIX}{gone.pid}-abc"
    live = tmp_path / f"{isolation.VIEW_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{isolation.VIEW_PREFIX}notapid"
    for folder in (stale, live, other):
        (folder / "startup").mkdir(parents=True)
    assert isolation.sweep_views(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
