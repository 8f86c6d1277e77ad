"""``ls``, ``head`` and ``grep`` confined and bounded: hostile names, links out, huge counts,
patterns that backtrack for ever (fedra.runtime.confined, fedra.runtime.workspace_files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fedra.core.admin_spec import ADMIN_COMMAND, BadArguments, validate_args
from fedra.runtime import workspace_files
from fedra.runtime.confined import FileRefused, FolderRef, parse_file, parse_folder
from fedra.runtime.workspace_files import grep_text, head_text, list_folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A participant's folder: its log, a secret beside it, and one job's folder."""
    kit = tmp_path / "kit"
    (kit / "startup").mkdir(parents=True)
    (kit / "startup" / "client.key").write_text("SECRET KEY\n")
    (kit / "log.txt").write_text(
        "".join(f"line {i} {'ERROR' if i % 3 == 0 else 'ok'}\n" for i in range(30))
    )
    job = kit / "jobs" / "j1"
    (job / "sub").mkdir(parents=True)
    (job / "log.txt").write_text("job says hi\n")
    (job / "sub" / "model.npz").write_bytes(b"x" * 10)
    return kit


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../x",
        "j1/../../startup",
        "/etc",
        "/etc/passwd",
        "startup",
        "local/x",
        "jobs/j1",
        "j1/./sub",
        "j1//sub",
        "j1\\..",
        "j1/\x00",
        "a" * 600,
    ],
)
def test_hostile_folder_names_are_refused(name: str) -> None:
    with pytest.raises(FileRefused):
        parse_folder(name)


def test_folder_names_that_may_be_listed() -> None:
    assert parse_folder(None) == FolderRef(None)
    assert parse_folder("") == FolderRef(None)
    assert parse_folder("j1") == FolderRef("j1", ())
    assert parse_folder("j1/sub") == FolderRef("j1", ("sub",))


def test_listing_a_job_folder_names_kinds_and_sizes(root: Path) -> None:
    walk = list_folder(root, ("jobs", "j1"), recursive=True)
    kinds = {e.name: (e.kind, e.size) for e in walk.entries}
    assert kinds == {
        "log.txt": ("file", 12),
        "sub": ("dir", None),
        "sub/model.npz": ("file", 10),
    }
    assert not walk.truncated
    assert [e.name for e in list_folder(root, ("jobs", "j1")).entries] == ["log.txt", "sub"]


def test_symlinks_are_listed_never_followed(root: Path) -> None:
    job = root / "jobs" / "j1"
    os.symlink(root / "startup", job / "keys")  # a link job code could plant
    os.symlink(root / "startup" / "client.key", job / "key.pem")
    walk = list_folder(root, ("jobs", "j1"), recursive=True)
    kinds = {e.name: e.kind for e in walk.entries}
    assert kinds["keys"] == "link" and kinds["key.pem"] == "link"
    assert not any(e.name.startswith("keys/") for e in walk.entries)  # not entered
    with pytest.raises(FileRefused, match="link"):
        list_folder(root, ("jobs", "j1", "keys"))
    with pytest.raises(FileRefused, match="link"):
        head_text(root, ("jobs", "j1", "key.pem"), 5)
    with pytest.raises(FileRefused, match="link"):
        grep_text(root, ("jobs", "j1", "key.pem"), "SECRET", False)


def test_a_linked_job_folder_is_refused(root: Path) -> None:
    os.symlink(root / "startup", root / "jobs" / "j2")
    with pytest.raises(FileRefused, match="link"):
        list_folder(root, ("jobs", "j2"))
    with pytest.raises(FileRefused, match="link"):
        head_text(root, ("jobs", "j2", "client.key"), 1)


def test_listings_are_bounded_in_entries_and_depth(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_files, "MAX_ENTRIES", 5)
    many = root / "jobs" / "j1" / "many"
    many.mkdir()
    for i in range(20):
        (many / f"f{i:02}").write_text("")
    walk = list_folder(root, ("jobs", "j1", "many"))
    assert len(walk.entries) == 5 and walk.truncated
    monkeypatch.setattr(workspace_files, "MAX_ENTRIES", 2000)
    deep = root / "jobs" / "j1" / "deep"
    deep.joinpath(*["d"] * 12).mkdir(parents=True)
    walk = list_folder(root, ("jobs", "j1", "deep"), recursive=True)
    assert walk.truncated
    assert max(e.name.count("/") for e in walk.entries) < workspace_files.MAX_LIST_DEPTH


def test_unprintable_file_names_are_escaped(root: Path) -> None:
    (root / "jobs" / "j1" / "evil\x1b[2Jname").write_text("")
    names = [e.name for e in list_folder(root, ("jobs", "j1")).entries]
    assert "evil\\x1b[2Jname" in names and not any("\x1b" in n for n in names)


def test_head_reads_the_first_lines(root: Path) -> None:
    assert head_text(root, ("log.txt",), 2).splitlines() == ["line 0 ERROR", "line 1 ok"]


@pytest.mark.parametrize(
    ("cmd", "args", "problem"),
    [
        ("head", {"participant": "server", "file": "log.txt", "lines": 10**9}, "1..10000"),
        ("head", {"participant": "server", "file": "log.txt", "lines": 0}, "1..10000"),
        ("grep", {"participant": "server", "pattern": "a" * 257, "file": "log.txt"}, "longer"),
        ("grep", {"participant": "server", "pattern": "", "file": "log.txt"}, "non-empty"),
        ("ls", {"participant": "server", "recursive": "yes"}, "true or false"),
        ("ls", {"participant": "server", "path": "x\x00"}, "control characters"),
        ("set_timeout", {"seconds": 0}, "1..86400"),
        ("set_timeout", {"seconds": 10**9}, "1..86400"),
        ("set_timeout", {"seconds": float("nan")}, "expected a number"),
    ],
)
def test_huge_counts_and_bad_arguments_are_refused_by_the_declaration(
    cmd: str, args: dict[str, object], problem: str
) -> None:
    with pytest.raises(BadArguments, match=problem):
        validate_args(ADMIN_COMMAND[cmd], args)


def test_grep_plain_text_and_case(root: Path) -> None:
    found = grep_text(root, ("log.txt",), "ERROR", False).splitlines()
    assert found[:2] == ["1:line 0 ERROR", "4:line 3 ERROR"] and len(found) == 10
    assert grep_text(root, ("log.txt",), "error", False) == ""
    assert len(grep_text(root, ("log.txt",), "error", True).splitlines()) == 10


def test_grep_regular_expressions_run_apart(root: Path) -> None:
    found = grep_text(root, ("log.txt",), r"^line 2\d ok$", False).splitlines()
    assert found == [f"{i + 1}:line {i} ok" for i in (20, 22, 23, 25, 26, 28, 29)]
    with pytest.raises(FileRefused, match="bad pattern"):
        grep_text(root, ("log.txt",), "(unclosed", False)


def test_a_pattern_that_backtracks_for_ever_is_stopped(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``(a+)+$`` on a long run of a's followed by b takes for ever in ``re``: its process is
    stopped at its CPU limit, the caller gets one line and is not held up."""
    monkeypatch.setattr(workspace_files, "GREP_CPU_S", 1)
    (root / "jobs" / "j1" / "evil.log").write_text("a" * 4000 + "b\n")
    started = time.monotonic()
    with pytest.raises(FileRefused, match=r"pattern (was stopped|took longer)"):
        grep_text(root, ("jobs", "j1", "evil.log"), r"(a+)+$", False)
    assert time.monotonic() - started < workspace_files.GREP_WALL_S + 2


def test_grep_searches_only_the_end_of_a_big_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_files, "GREP_MAX_BYTES", 1000)
    (root / "big.log").write_text("needle first\n" + "x" * 5000 + "\nneedle last\n")
    found = grep_text(root, ("big.log",), "needle", False).splitlines()
    assert found[0].startswith("(searched the last") and found[1:] == ["1:needle last"]


def test_files_outside_the_allow_list_cannot_be_named(root: Path) -> None:
    for name in ("startup/client.key", "../kit/startup/client.key", "/etc/passwd"):
        with pytest.raises(FileRefused):
            parse_file(name)
