"""AdminKit: a kit folder is validated up front; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from admin_fakes import write_kit

from fedra.admin import AdminKit, KitError
from fedra.core import ConfigError


def test_load_reads_every_field(kit_dir: Path) -> None:
    kit = AdminKit.load(kit_dir)
    assert (kit.name, kit.org, kit.role) == ("admin@nvidia.com", "nvidia", "project_admin")
    assert kit.target == "localhost:8003" and kit.server_name == "server"
    assert kit.transfer_dir == kit_dir / "transfer"
    assert AdminKit.load(kit_dir / "startup") == kit


def test_server_name_defaults_to_the_host(tmp_path: Path) -> None:
    assert AdminKit.load(write_kit(tmp_path, server_name=None)).server_name == "localhost"


@pytest.mark.parametrize(
    ("changes", "key", "expected"),
    [
        ({"admin_port": "8003"}, "admin_port", "a port number 1-65535, got '8003'"),
        ({"admin_port": 0}, "admin_port", "a port number"),
        ({"admin_port": None}, "admin_port", "missing; this key is required"),
        ({"name": ""}, "name", "a non-empty string"),
        ({"server_host": 5}, "server_host", "a non-empty string, got 5"),
        ({"role": "root"}, "role", "one of lead, member, org_admin, project_admin"),
    ],
)
def test_invalid_values_name_file_and_key(
    tmp_path: Path, changes: dict[str, object], key: str, expected: str
) -> None:
    with pytest.raises(KitError) as caught:
        AdminKit.load(write_kit(tmp_path, **changes))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'startup' / 'fed_admin.json'}: {key}: ")
    assert expected in message
    assert isinstance(caught.value, ConfigError) and caught.value.exit_code == 2


def test_bad_json_names_line_and_column(kit_dir: Path) -> None:
    (kit_dir / "startup" / "fed_admin.json").write_text('{"name": ,}')
    with pytest.raises(KitError, match=r"fed_admin.json: line 1 column 10: expected valid JSON"):
        AdminKit.load(kit_dir)


def test_missing_files_are_named(kit_dir: Path) -> None:
    (kit_dir / "startup" / "client.key").unlink()
    with pytest.raises(KitError, match=r"client.key: expected this file \(the admin's private"):
        AdminKit.load(kit_dir)
    (kit_dir / "startup" / "fed_admin.json").unlink()
    with pytest.raises(KitError, match=r"fed_admin.json: expected this file to exist"):
        AdminKit.load(kit_dir)
    with pytest.raises(KitError, match="does not exist"):
        AdminKit.load(kit_dir / "nowhere")


def test_find_defaults_to_the_poc_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KitError, match="no admin kit given") as caught:
        AdminKit.find()
    assert caught.value.hint and "--kit" in caught.value.hint
    write_kit(tmp_path / "poc" / "admin")
    assert AdminKit.find().root == Path("poc/admin")
