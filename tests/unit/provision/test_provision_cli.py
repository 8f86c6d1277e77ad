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


def test_a_flare_project_file_is_converted_reported_and_provisioned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.unit.provision.flare_samples import FLARE_21

    (tmp_path / "flare.yml").write_text(FLARE_21)
    code, out, err = cli(capsys, "provision", "-p", "flare.yml", "-w", "ws")
    assert code == 0, err
    assert "flare.yml is a FLARE project file (api_version 3):" in out
    cert = next(n for n in FLARE_21.splitlines() if "CertBuilder" in n)
    line = FLARE_21.splitlines().index(cert) + 1
    assert f"  line {line}: nvflare.lighter.impl.cert.CertBuilder: skipped" in out
    prod = tmp_path / "ws" / "lakeside" / "prod_00"
    assert "provisioned lakeside in" in out
    for name in ("watch.lakeside.test", "fl1.lakeside.test", "north-clinic", "chief@lakeside.test"):
        verify_kit(prod / name)
    assert (prod / "project.yml").read_text().startswith("# Converted by `fedra provision`")


def test_convert_writes_the_fedra_file_and_provisions_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.unit.provision.flare_samples import FLARE_2X

    (tmp_path / "flare.yml").write_text(FLARE_2X)
    code, out, err = cli(capsys, "provision", "-p", "flare.yml", "--convert", "fedra.yml")
    assert code == 0, err
    assert "wrote fedra.yml; nothing provisioned" in out
    assert not (tmp_path / "workspace").exists()
    converted = (tmp_path / "fedra.yml").read_text()
    assert "api_version: 1" in converted and "docker_image: hilltop/fl:2.0" in converted
    code, _, err = cli(capsys, "provision", "-p", "flare.yml", "--convert", "fedra.yml")
    assert code == 2 and "fedra.yml already exists: not replacing it" in err
    assert (tmp_path / "fedra.yml").read_text() == converted
    code, out, err = cli(capsys, "provision", "-p", "fedra.yml", "-w", "ws")
    assert code == 0, err
    assert "FLARE" not in out
    assert (tmp_path / "ws" / "hilltop" / "prod_00" / "main.hilltop.test").is_dir()
    code, _, err = cli(capsys, "provision", "-p", "fedra.yml", "--convert", "again.yml")
    assert code == 2 and "is already a Fedra project file (api_version 1)" in err
    code, out, _ = cli(capsys, "provision", "--help")
    assert "FLARE" in out and "--convert" in out and "FEDRA_PYTHON" in out


@pytest.mark.parametrize(
    "text",
    [
        "api_version: 3\nname: x\nparticipants:\n  - {name: a, type: server, org: o\n",
        "api_version: 3\nname: x\nbuilders:\n  - path: evil.Builder\n",
        "api_version: 3\nname: x\nparticipants:\n  - {name: a, type: server, org: o, ip: 1}\n",
        "api_version: 3\nname: x\nparticipants: [{name: s, type: server, org: o}]\n"
        "builders: [{path: nvflare.lighter.impl.static_file.StaticFileBuilder, args: [1]}]\n",
    ],
)
def test_a_malformed_flare_file_is_one_line_never_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    (tmp_path / "flare.yml").write_text(text)
    code, _, err = cli(capsys, "provision", "-p", "flare.yml")
    assert code == 2
    assert err.startswith("error: flare.yml:") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
