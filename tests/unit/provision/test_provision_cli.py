"""``fedra provision`` through ``fedra.cli.main``: the sample prompt, kits, one-line errors."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from fedra.cli import main
from fedra.provision import SAMPLE_PROJECT, verify_kit

PROMPT = "No project.yml found in the current folder. Generate a sample? (y/N)"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")


def test_yes_writes_the_sample_and_says_to_edit_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = cli(capsys, "provision", "--yes")
    assert code == 0
    assert (tmp_path / "project.yml").read_text() == SAMPLE_PROJECT
    assert "project.yml was created. Edit it" in out
    assert not (tmp_path / "workspace").exists()


def test_prompt_answered_no_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, _ = cli(capsys, "provision")
    assert code == 0
    assert PROMPT in out
    assert "nothing provisioned" in out
    assert list(tmp_path.iterdir()) == []


def test_prompt_answered_yes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, _ = cli(capsys, "provision")
    assert code == 0
    assert PROMPT in out
    assert (tmp_path / "project.yml").is_file()


def test_end_of_input_counts_as_no(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, _ = cli(capsys, "provision")
    assert code == 0
    assert not (tmp_path / "project.yml").exists()


def test_provision_the_sample(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cli(capsys, "provision", "--yes")
    code, out, err = cli(capsys, "provision", "-p", "project.yml", "-w", "ws")
    assert code == 0, err
    prod = tmp_path / "ws" / "example_project" / "prod_00"
    assert f"provisioned example_project in {Path('ws/example_project/prod_00')}" in out
    assert "admin@example.org/startup/fl_admin.sh" in out
    for name in ("overseer", "server1", "server2", "site-1", "site-2", "admin@example.org"):
        verify_kit(prod / name)
        assert (prod / f"{name}.zip").is_file()
    # Without -p, ./project.yml is used when it exists; the next provisioning is prod_01.
    code, _, _ = cli(capsys, "provision", "-w", "ws")
    assert code == 0
    assert (tmp_path / "ws" / "example_project" / "prod_01" / "site-1").is_dir()


def test_invalid_project_is_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "project.yml").write_text(SAMPLE_PROJECT.replace("port: 8443", "port: abc"))
    code, _, err = cli(capsys, "provision")
    assert code == 2
    assert err.strip().startswith("error: project.yml:")
    assert "participants[0].port: expected an integer 1-65535, got 'abc'" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_project_file_given_with_p(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "provision", "-p", "nowhere.yml")
    assert code == 2
    assert "nowhere.yml: file not found" in err


def test_revoked_names_are_listed_and_a_revoked_participant_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.unit.provision.conftest import PROJECT

    (tmp_path / "p.yml").write_text(PROJECT + "revoked: [old-site]\n")
    code, out, _ = cli(capsys, "provision", "-p", "p.yml")
    assert code == 0
    assert "revoked (refused by every new kit): old-site" in out
    (tmp_path / "p.yml").write_text(PROJECT + "  - {name: old-site, type: client, org: x}\n")
    code, _, err = cli(capsys, "provision", "-p", "p.yml")
    assert code != 0
    assert "'old-site' is revoked" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli(capsys, "provision", "--help")
    assert "revoked:" in out and "state/revoked.json" in out
