"""The confined reader of cat/tail/download_job: allow-list, names, links, bounded reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedra.runtime.confined import (
    MAX_READ_BYTES,
    FileRef,
    FileRefused,
    cat_text,
    parse_file,
    regular_files,
    tail_text,
)

JOB = "0123abcd"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("log.txt", FileRef(None, ("log.txt",))),
        (f"{JOB}/log.txt", FileRef(JOB, ("log.txt",))),
        (f"{JOB}/job/app/config/x.json", FileRef(JOB, ("job", "app", "config", "x.json"))),
    ],
)
def test_the_allow_list(name: str, expected: FileRef) -> None:
    assert parse_file(name) == expected
    assert parse_file(name).name == name


@pytest.mark.parametrize(
    "name",
    [
        "x\x00y",
        "log.txt\n",
        "a\x1bb/log.txt",
        "/etc/passwd",
        "../log.txt",
        f"{JOB}/../../startup/client.key",
        f"{JOB}//log.txt",
        f"{JOB}/./log.txt",
        "startup/server.key",
        "local/authorization.json",
        "store/jobs.db",
        "spool/x",
        "jobs/x/log.txt",
        "transfer/x",
        "jobs.db",
        "",
        "a\\b",
        "x" * 600,
        "/".join([JOB] + ["d"] * 20),
        None,
        7,
        ["log.txt"],
    ],
)
def test_anything_else_is_refused_in_one_line(name: object) -> None:
    with pytest.raises(FileRefused) as err:
        parse_file(name)
    assert "\n" not in str(err.value) and "\x00" not in str(err.value)


def test_logs_and_other_job_files() -> None:
    assert parse_file("log.txt").is_log
    assert parse_file(f"{JOB}/server_job.log").is_log
    assert parse_file(f"{JOB}/log.txt").is_log
    assert not parse_file(f"{JOB}/job/meta.json").is_log


def test_reads_the_end_of_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("".join(f"line {i}\n" for i in range(10)))
    assert tail_text(tmp_path, ("log.txt",), 2) == "line 8\nline 9"
    (tmp_path / "big.txt").write_bytes(b"a" * MAX_READ_BYTES + b"END")
    text = cat_text(tmp_path, ("big.txt",))
    assert len(text) == MAX_READ_BYTES and text.endswith("END")


def test_links_and_special_files_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("KEY")
    job = tmp_path / "job"
    job.mkdir()
    (job / "sym.txt").symlink_to(secret)
    os.link(secret, job / "hard.txt")
    (tmp_path / "linked_dir").symlink_to(job)
    os.mkfifo(job / "fifo")
    for parts, why in [
        (("job", "sym.txt"), "a link"),
        (("job", "hard.txt"), "hard link"),
        (("linked_dir", "hard.txt"), "a link"),
        (("job", "fifo"), "not a regular file"),
        (("job",), "not a regular file"),
        (("job", "missing"), "no file"),
    ]:
        with pytest.raises(FileRefused, match=why):
            cat_text(tmp_path, parts)


def test_the_walk_for_downloads_skips_links(tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("KEY")
    root = tmp_path / "ws"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.npz").write_bytes(b"model")
    (root / "log.txt").write_text("log")
    os.link(secret, root / "models" / "hard.key")
    (root / "sym.key").symlink_to(secret)
    (root / "outside").symlink_to(tmp_path)
    skipped: list[str] = []
    found = {}
    for name, fd in regular_files(root, skipped):
        with os.fdopen(fd, "rb") as handle:
            found[name] = handle.read()
    assert found == {"log.txt": b"log", "models/m.npz": b"model"}
    assert any("hard.key" in s and "hard link" in s for s in skipped)
    assert any("sym.key" in s for s in skipped)
