"""HE key files in POC workspaces and provisioned kits: only when asked, signed, one key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fedra.cli import main
from fedra.he import SERVER_CONTEXT_FILE, SITE_CONTEXT_FILE, load_context
from fedra.pki import verify_kit
from fedra.poc import prepare
from fedra.provision import parse_project, provision
from fedra.provision.errors import ProjectError

pytest.importorskip("tenseal")  # the he extra

PROJECT = """\
api_version: 1
name: he_project
homomorphic_encryption: true
participants:
  - {name: server1, type: server, org: a, host: 127.0.0.1}
  - {name: site-1, type: client, org: a}
  - {name: site-2, type: client, org: b}
  - {name: admin@a.org, type: admin, org: a, role: project_admin}
"""


def _he_files(kit: Path) -> list[str]:
    return sorted(p.name for p in (kit / "startup").glob("he_*"))


def _check_server_and_sites(server: Path, sites: list[Path]) -> str:
    """Server: public context only; sites: the secret one (0600); one key; kits still verify.
    Returns the key fingerprint."""
    assert _he_files(server) == [SERVER_CONTEXT_FILE]
    public = load_context(server / "startup" / SERVER_CONTEXT_FILE, secret=False)
    assert not public.is_private and not public.tenseal.has_secret_key()
    for site in sites:
        assert _he_files(site) == [SITE_CONTEXT_FILE]
        path = site / "startup" / SITE_CONTEXT_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = load_context(path, secret=True)
        assert secret.fingerprint == public.fingerprint
        verify_kit(site)  # the key file is part of the signed startup folder
    verify_kit(server)
    return public.fingerprint


def test_poc_prepare_writes_keys_only_when_asked(tmp_path: Path) -> None:
    plain = prepare(tmp_path / "plain", 2)
    for kit in (plain.server, plain.admin, *(plain.site(s) for s in plain.sites)):
        assert _he_files(kit) == []
    layout = prepare(tmp_path / "he", 2, he=True)
    _check_server_and_sites(layout.server, [layout.site(s) for s in layout.sites])
    assert _he_files(layout.admin) == []


def test_poc_prepare_cli_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["poc", "prepare", "-n", "1", "--he", "-w", str(tmp_path / "poc")])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0, capsys.readouterr()
    _check_server_and_sites(tmp_path / "poc" / "server", [tmp_path / "poc" / "site-1"])


def test_provisioning_with_homomorphic_encryption(tmp_path: Path) -> None:
    project = parse_project(PROJECT)
    assert project.homomorphic_encryption
    first = provision(project, tmp_path)
    fingerprint = _check_server_and_sites(
        first.kits["server1"], [first.kits["site-1"], first.kits["site-2"]]
    )
    assert _he_files(first.kits["admin@a.org"]) == []
    state = tmp_path / "he_project" / "state" / "he_context.tenseal"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    # A later provisioning (say, a site added) shares the key of the first one.
    second = provision(project, tmp_path)
    assert second.prod != first.prod
    again = _check_server_and_sites(second.kits["server1"], [second.kits["site-2"]])
    assert again == fingerprint


def test_provisioning_without_it_writes_no_keys(tmp_path: Path) -> None:
    text = PROJECT.replace("homomorphic_encryption: true\n", "")
    result = provision(parse_project(text), tmp_path)
    for kit in result.kits.values():
        assert _he_files(kit) == []
    assert not (tmp_path / "he_project" / "state" / "he_context.tenseal").exists()


def test_the_project_key_must_be_a_boolean() -> None:
    with pytest.raises(ProjectError, match=r"project.yml:3: homomorphic_encryption: expected true"):
        parse_project(PROJECT.replace("encryption: true", "encryption: 'yes'"))
