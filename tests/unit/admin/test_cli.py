"""``fedra job …`` and ``fedra admin`` against the fake server, through ``fedra.cli.main``."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from admin_fakes import FakeConnection, FakeServer, write_kit

from fedra.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_list_json(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, fake_connect: list[dict[str, Any]]
) -> None:
    code, out, _ = cli(capsys, "job", "list", "--kit", str(kit_dir), "--format", "json")
    assert code == 0
    assert [j["job_id"] for j in json.loads(out)] == ["a1b2c3", "d4e5f6"]
    assert fake_connect[0]["target"] == "localhost:8003"


def test_list_text_and_filters(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, server: FakeServer, fake_connect: Any
) -> None:
    code, out, _ = cli(capsys, "job", "list", "-d", "-n", "d4", "--kit", str(kit_dir))
    assert code == 0 and "d4e5f6" in out and "a1b2c3" not in out and "history of" in out
    assert server.requests[-1].headers["args"] == {"detailed": True, "prefix": "d4"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "a1b2c3"], {"job_id": "a1b2c3", "status": "FINISHED:COMPLETED"}),
        (["abort", "d4e5f6"], {"job_id": "d4e5f6", "status": "FINISHED:ABORTED"}),
        (["clone", "a1b2c3"], {"job_id": "clone1"}),
        (["delete", "a1b2c3"], {}),
        (["stats", "a1b2c3"], {"status": "FINISHED:COMPLETED"}),
        (["errors", "a1b2c3"], {"failure": None, "errors": []}),
        (["wait", "a1b2c3", "--timeout", "5"], {"status": "FINISHED:COMPLETED"}),
    ],
)
def test_job_commands_json(
    capsys: pytest.CaptureFixture[str],
    kit_dir: Path,
    fake_connect: Any,
    argv: list[str],
    expected: dict[str, Any],
) -> None:
    code, out, err = cli(capsys, "job", *argv, "--kit", str(kit_dir), "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {k: data[k] for k in expected} == expected


def test_submit_and_download(
    capsys: pytest.CaptureFixture[str],
    kit_dir: Path,
    fake_connect: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr("fedra.admin.session._zip_folder", lambda folder: b"zip")
    job = str(EXAMPLES / "hello-numpy")
    code, out, _ = cli(capsys, "job", "submit", job, "--kit", str(kit_dir))
    assert (code, out) == (0, "Submitted job: new1\n")
    code, out, _ = cli(
        capsys,
        "job",
        "download",
        "a1b2c3",
        "-o",
        str(tmp_path),
        "--kit",
        str(kit_dir),
        "--format",
        "json",
    )
    assert json.loads(out) == {"job_id": "a1b2c3", "path": str(tmp_path / "a1b2c3")}
    assert (tmp_path / "a1b2c3" / "workspace" / "summary.json").is_file()


def test_submit_of_a_malformed_job_fails_before_connecting(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, fake_connect: Any, tmp_path: Path
) -> None:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLES / "hello-numpy", job)
    (job / "app" / "config" / "config_fed_server.json").write_text('{"workflows": 3}')
    code, out, err = cli(capsys, "job", "submit", str(job), "--kit", str(kit_dir))
    assert code == 2 and out == ""
    assert err.startswith("error: app/config/config_fed_server.json: workflows: expected")
    assert fake_connect == []


def test_server_refusal_is_one_line_with_hint_and_exit_8(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, fake_connect: Any
) -> None:
    code, out, err = cli(capsys, "job", "abort", "a1b2c3", "--kit", str(kit_dir))
    assert code == 8 and out == ""
    assert err.splitlines() == ["error: job a1b2c3 already finished", "hint: nothing to abort"]


def test_wait_fails_unless_the_job_completed(
    capsys: pytest.CaptureFixture[str], kit_dir: Path, server: FakeServer, fake_connect: Any
) -> None:
    server.script["d4e5f6"] = ["FINISHED:EXECUTION_EXCEPTION"]
    code, out, err = cli(capsys, "job", "wait", "d4e5f6", "--kit", str(kit_dir))
    assert code == 8 and "FINISHED:EXECUTION_EXCEPTION" in out
    assert "error: job d4e5f6 ended FINISHED:EXECUTION_EXCEPTION" in err
    assert "fedra job errors d4e5f6" in err


def test_missing_kit_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "job", "list")
    assert code == 2
    assert err.splitlines() == [
        "error: no admin kit given, and there is no poc/admin in the current folder",
        "hint: pass --kit DIR (the admin's startup kit), or run 'fedra poc prepare' here",
    ]


def test_default_kit_is_poc_admin(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_connect: list[dict[str, Any]],
) -> None:
    write_kit(tmp_path / "poc" / "admin", admin_port=9003)
    monkeypatch.chdir(tmp_path)
    code, _, _ = cli(capsys, "job", "list", "--format", "json")
    assert code == 0 and fake_connect[0]["target"] == "localhost:9003"


def test_admin_console_reads_piped_stdin(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kit_dir: Path,
    connection: FakeConnection,
    fake_connect: Any,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("list_jobs --format json\nbye\n"))
    code, out, err = cli(capsys, "admin", "--kit", str(kit_dir))
    assert code == 0
    assert len(json.loads(out)) == 2
    assert "Connected to server localhost:8003 as admin@nvidia.com (project_admin)" in err
    assert connection.closed


def test_admin_console_exit_code_of_first_failure(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kit_dir: Path,
    fake_connect: Any,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("get_job nope\nlist_jobs\n"))
    code, _, err = cli(capsys, "admin", "--kit", str(kit_dir))
    assert code == 8 and "error: no job nope" in err
