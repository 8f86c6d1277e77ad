"""The edges of job isolation: the kit copy a job gets (no keys, no links), its removal, the
sweep of copies whose parent is gone, and who job processes run as. The parts that change
owners need root; they are skipped otherwise."""

from __future__ import annotations

import logging
import os
import pwd
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.runtime import isolation

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="changing owners needs root (a job user exists only then)"
)


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temp folder kit copies go to, here a test's own; no copy is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert not list(folder.glob(f"{isolation.VIEW_PREFIX}*")), "a kit copy was left"


@pytest.fixture
def no_job_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent that is not root (or could not make the job user): jobs run as itself."""
    monkeypatch.setattr(isolation, "job_user", lambda: None)


def _kit(root: Path) -> Path:
    kit = root / "site-1"
    (kit / "startup" / "nested").mkdir(parents=True)
    (kit / "local").mkdir()
    (kit / "jobs" / "j1").mkdir(parents=True)
    for name in ("client.key", "client.crt", "rootCA.pem", "fed_client.json"):
        (kit / "startup" / name).write_text(f"the {name}")
    (kit / "startup" / "nested" / "inner.txt").write_text("a folder is not copied")
    (kit / "local" / "privacy.json").write_text('{"task_result_filters": []}')
    (kit / "local" / "authorization.json").write_text("{}")
    return kit


def test_the_kit_copy_takes_no_link_folder_or_key(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    secret = tmp_path / "elsewhere.pem"
    secret.write_text("a file outside the kit")
    (kit / "startup" / "linked.pem").symlink_to(secret)
    (kit / "startup" / "linked.key").symlink_to(kit / "startup" / "client.key")
    view = isolation._kit_view(kit, tmp_path / "view")
    assert sorted(p.name for p in (view / "startup").iterdir()) == [
        "client.crt",
        "fed_client.json",
        "rootCA.pem",
    ]
    assert (view / "startup" / "rootCA.pem").read_text() == "the rootCA.pem"
    assert not (view / "startup" / "rootCA.pem").is_symlink()  # a copy, not a link
    assert (view / "local" / "privacy.json").read_text() == '{"task_result_filters": []}'


def test_a_kit_without_startup_or_privacy_gives_an_empty_copy(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    view = isolation._kit_view(tmp_path / "bare", tmp_path / "view")
    assert sorted(p.name for p in view.iterdir()) == ["local", "startup"]
    assert not any((view / "startup").iterdir()) and not any((view / "local").iterdir())


def test_a_privacy_policy_that_is_a_folder_is_not_copied(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    (kit / "local" / "privacy.json").unlink()
    (kit / "local" / "privacy.json").mkdir()
    view = isolation._kit_view(kit, tmp_path / "view")
    assert not (view / "local" / "privacy.json").exists()


@pytest.mark.usefixtures("no_job_user")
def test_without_a_job_user_a_job_gets_a_kit_copy_and_the_environment_given(
    tmp_path: Path, temp: Path
) -> None:
    kit = _kit(tmp_path)
    workdir = kit / "jobs" / "j1"
    env = {"PATH": "/usr/bin", "FEDRA_X": "1"}
    launch = isolation.prepare_job(kit, workdir, tmp_path, env)
    assert launch.user is None
    assert launch.kit.parent == temp
    assert launch.kit.name.startswith(f"{isolation.VIEW_PREFIX}{os.getpid()}-")
    assert (launch.kit / "startup" / "rootCA.pem").is_file()
    assert not (launch.kit / "startup" / "client.key").exists()
    assert launch.env == env and launch.env is not env  # a copy: HOME, USER not set
    launch.env["FEDRA_X"] = "changed"
    assert env["FEDRA_X"] == "1"
    mode = stat.S_IMODE(kit.stat().st_mode)
    isolation.reclaim(workdir)
    assert not launch.kit.exists()
    assert stat.S_IMODE(kit.stat().st_mode) == mode  # nothing is locked down or handed over


@pytest.mark.usefixtures("no_job_user")
def test_without_an_environment_a_job_gets_this_processes(tmp_path: Path, temp: Path) -> None:
    kit = _kit(tmp_path)
    launch = isolation.prepare_job(kit, kit / "jobs" / "j1", tmp_path)
    try:
        assert launch.env == dict(os.environ)
    finally:
        isolation.reclaim(kit / "jobs" / "j1")
    assert not launch.kit.exists()


@pytest.mark.usefixtures("no_job_user")
def test_each_job_gets_its_own_copy_and_reclaim_removes_only_its_own(
    tmp_path: Path, temp: Path
) -> None:
    kit = _kit(tmp_path)
    (kit / "jobs" / "j2").mkdir()
    one = isolation.prepare_job(kit, kit / "jobs" / "j1", tmp_path)
    two = isolation.prepare_job(kit, kit / "jobs" / "j2", tmp_path)
    assert one.kit != two.kit
    isolation.reclaim(kit / "jobs" / "j1")
    assert not one.kit.exists() and two.kit.is_dir()
    isolation.reclaim(kit / "jobs" / "j1")  # again: nothing left to do
    isolation.reclaim(tmp_path / "never-prepared")
    isolation.reclaim(kit / "jobs" / "j2")
    assert not two.kit.exists()


# -- the sweep of copies whose parent is gone -------------------------------------------------
def _gone_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_the_sweep_follows_no_link_and_removes_no_file(tmp_path: Path) -> None:
    pid = _gone_pid()
    precious = tmp_path / "precious"
    (precious / "startup").mkdir(parents=True)
    link = tmp_path / f"{isolation.VIEW_PREFIX}{pid}-link"
    link.symlink_to(precious, target_is_directory=True)
    plain = tmp_path / f"{isolation.VIEW_PREFIX}{pid}-file"
    plain.write_text("not a kit copy")
    no_pid = tmp_path / f"{isolation.VIEW_PREFIX}x1-abc"
    no_pid.mkdir()
    assert isolation.sweep_views(tmp_path) == []
    assert (precious / "startup").is_dir() and link.is_symlink() and plain.is_file()
    assert no_pid.is_dir()


def test_the_sweep_removes_a_dead_parents_copies_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedra.isolation")
    pid = _gone_pid()
    stale = [tmp_path / f"{isolation.VIEW_PREFIX}{pid}-{n}" for n in ("a", "b")]
    for view in stale:
        (view / "startup").mkdir(parents=True)
        (view / "startup" / "rootCA.pem").write_text("x")
    assert sorted(isolation.sweep_views(tmp_path)) == stale
    assert not any(view.exists() for view in stale)
    assert "removed 2 kit copies of job processes whose parent is gone" in caplog.text


def test_the_sweep_keeps_the_copies_of_a_live_parent(tmp_path: Path) -> None:
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE)  # a live parent, not this one
    try:
        live = tmp_path / f"{isolation.VIEW_PREFIX}{proc.pid}-abc"
        live.mkdir()
        assert isolation.sweep_views(tmp_path) == []
        assert live.is_dir()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()


def test_the_sweep_looks_in_the_temp_folder_by_default(temp: Path) -> None:
    stale = temp / f"{isolation.VIEW_PREFIX}{_gone_pid()}-abc"
    stale.mkdir()
    assert isolation.sweep_views() == [stale]


# -- who job processes run as ------------------------------------------------------------------
def test_a_parent_that_is_not_root_runs_jobs_as_itself_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert isolation._decide() is None
    assert "does not run as root" in caplog.text and isolation.JOB_USER in caplog.text


def test_a_job_user_that_cannot_be_made_leaves_jobs_with_the_parents_rights(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def cannot(name: str) -> isolation.JobUser:
        raise OSError(f"cannot create the user {name} (no useradd)")

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(isolation, "_find_or_make", cannot)
    assert isolation._decide() is None
    assert "job processes run as root, with this participant's rights" in caplog.text
    assert "no useradd" in caplog.text


def test_a_job_user_with_roots_uid_or_gid_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for uid, gid in ((0, 1000), (1000, 0)):
        entry = pwd.struct_passwd(("fedra-job", "x", uid, gid, "", "/", "/bin/false"))
        monkeypatch.setattr(pwd, "getpwnam", lambda name, e=entry: e)
        with pytest.raises(OSError, match="the user fedra-job has root's uid or gid"):
            isolation._find_or_make("fedra-job")


def test_an_existing_job_user_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = pwd.struct_passwd(("fedra-job", "x", 1234, 4321, "", "/", "/bin/false"))
    monkeypatch.setattr(pwd, "getpwnam", lambda name: entry)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("useradd was run"))
    assert isolation._find_or_make("fedra-job") == isolation.JobUser("fedra-job", 1234, 4321)


def test_a_missing_useradd_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", missing)
    monkeypatch.setattr(isolation.shutil, "which", lambda name: str(tmp_path / name))
    with pytest.raises(OSError, match=r"cannot create the user nobody-here \(.*useradd: "):
        isolation._find_or_make("nobody-here")


def test_a_command_as_the_job_user_drops_groups_and_rights_before_the_program() -> None:
    user = isolation.JobUser("fedra-job", 1234, 4321)
    argv = isolation.command_as(user, ["/usr/bin/python3", "-m", "x", "--kit", "k"])
    assert argv[1:4] == ["-I", "-S", "-c"]  # isolated: no PYTHONPATH, no site of the user's
    drop = argv[4]
    assert drop.index("setgroups([])") < drop.index("setgid") < drop.index("setuid")
    assert drop.index("setuid") < drop.index("execv")
    assert argv[5:] == ["1234", "4321", "/usr/bin/python3", "-m", "x", "--kit", "k"]


def test_folders_above_the_python_are_made_searchable_not_listable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = tmp_path / "a"
    (closed / "b").mkdir(parents=True)
    closed.chmod(0o700)
    (closed / "b").chmod(0o751)
    above = {folder: folder.stat().st_mode for folder in tmp_path.parents}
    try:
        isolation._searchable([closed / "b" / "python3"], "job processes can run it")
    finally:  # pytest's own folders above tmp_path keep their modes
        for folder, mode in above.items():
            folder.chmod(stat.S_IMODE(mode))
    assert stat.S_IMODE(closed.stat().st_mode) == 0o701
    assert stat.S_IMODE((closed / "b").stat().st_mode) == 0o751  # had it: untouched
    assert f"made {closed} searchable by others" in caplog.text
    assert f"made {closed / 'b'} searchable" not in caplog.text


def test_the_python_paths_name_the_interpreter_fedra_and_absolute_pythonpath_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    import fedra

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), "relative/dir", ""]))
    paths = isolation._python_paths()
    assert paths[0] == Path(sys.executable).resolve()
    assert Path(fedra.__file__).resolve().parent in paths
    assert tmp_path in paths
    assert Path("relative/dir") not in paths and Path() not in paths


# -- as root: the hand-over of a job's folder ----------------------------------------------------
@as_root
def test_the_hand_over_changes_no_link_target_and_no_entry_of_another_user(
    tmp_path: Path,
) -> None:
    user = isolation.job_user()
    assert user is not None
    outside = tmp_path / "outside.txt"
    outside.write_text("root's file")
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "link").symlink_to(outside)
    (workdir / "mine.txt").write_text("the parent's")
    (workdir / "theirs.txt").write_text("someone else's")
    os.chown(workdir / "theirs.txt", 4242, 4242)
    isolation._hand_over(workdir, user)
    assert outside.stat().st_uid == 0  # the link itself changed hands, not its target
    assert (workdir / "link").lstat().st_uid == user.uid
    assert (workdir / "mine.txt").stat().st_uid == user.uid
    assert (workdir / "theirs.txt").stat().st_uid == 4242
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700


@as_root
def test_reclaim_hands_everything_back_to_root_and_closes_the_folder(tmp_path: Path) -> None:
    user = isolation.job_user()
    assert user is not None
    workdir = tmp_path / "job"
    (workdir / "deep").mkdir(parents=True)
    (workdir / "deep" / "result.npz").write_text("x")
    for path in (workdir, workdir / "deep", workdir / "deep" / "result.npz"):
        os.chown(path, user.uid, user.gid)
    workdir.chmod(0o755)
    isolation.reclaim(workdir)
    for path in (workdir, workdir / "deep", workdir / "deep" / "result.npz"):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    isolation.reclaim(tmp_path / "gone")  # a folder that is gone already: nothing to do


@as_root
def test_a_folder_holding_the_job_users_entry_counts_as_in_use(tmp_path: Path) -> None:
    user = isolation.job_user()
    assert user is not None
    busy, idle, owned = tmp_path / "busy", tmp_path / "idle", tmp_path / "owned"
    for folder in (busy / "workspace", idle / "workspace", owned):
        folder.mkdir(parents=True)
    os.chown(busy / "workspace", user.uid, user.gid)
    os.chown(owned, user.uid, user.gid)
    assert isolation._in_use(busy, busy.lstat(), user)
    assert isolation._in_use(owned, owned.lstat(), user)
    assert not isolation._in_use(idle, idle.lstat(), user)
    (tmp_path / "file").write_text("x")
    assert not isolation._in_use(tmp_path / "file", (tmp_path / "file").lstat(), user)
