"""Signed startup kits: a changed, removed or added startup/ file is refused by name."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from fedra.pki import CertificateError, CertKey, Identity, create_ca, write_participant
from fedra.provision import KitTampered, sign_kit, verify_kit


@pytest.fixture(scope="module")
def ca() -> CertKey:
    return create_ca("signing-test")


@pytest.fixture
def kit(tmp_path: Path, ca: CertKey) -> Path:
    folder = tmp_path / "site-1"
    startup = folder / "startup"
    write_participant(startup, ca, Identity("site-1", "acme", "client"), file_stem="client")
    (startup / "fed_client.json").write_text('{"name": "site-1"}\n')
    (startup / "start.sh").write_text("#!/usr/bin/env bash\necho start\n")
    (folder / "local").mkdir()
    (folder / "local" / "resources.json.default").write_text("{}\n")
    sign_kit(folder, ca)
    return folder


def tampered(kit: Path) -> KitTampered:
    with pytest.raises(KitTampered) as info:
        verify_kit(kit)
    return info.value


def test_round_trip(kit: Path) -> None:
    signatures = json.loads((kit / "startup" / "signature.json").read_text())
    assert sorted(signatures) == [
        "client.crt",
        "client.key",
        "fed_client.json",
        "rootCA.pem",
        "start.sh",
    ]
    assert all(base64.b64decode(s, validate=True) for s in signatures.values())
    assert verify_kit(kit) is None


def test_changed_file_is_named(kit: Path) -> None:
    path = kit / "startup" / "fed_client.json"
    path.write_text('{"name": "site-1", "server_host": "evil.example.org"}\n')
    err = tampered(kit)
    assert err.file == "startup/fed_client.json"
    assert "startup/fed_client.json: changed since the kit was signed" in str(err)
    assert str(kit) in str(err)
    assert err.exit_code == 9


def test_removed_file_is_named(kit: Path) -> None:
    (kit / "startup" / "start.sh").unlink()
    err = tampered(kit)
    assert err.file == "startup/start.sh"
    assert "removed" in err.reason


def test_added_file_is_refused(kit: Path) -> None:
    (kit / "startup" / "extra.py").write_text("print('hi')\n")
    err = tampered(kit)
    assert err.file == "startup/extra.py"
    assert "added" in err.reason


def test_added_folder_and_symlink_are_refused(kit: Path, tmp_path: Path) -> None:
    (kit / "startup" / "plugins").mkdir()
    assert tampered(kit).file == "startup/plugins"
    (kit / "startup" / "plugins").rmdir()
    target = tmp_path / "elsewhere.sh"
    shutil.copyfile(kit / "startup" / "start.sh", target)
    (kit / "startup" / "start.sh").unlink()
    os.symlink(target, kit / "startup" / "start.sh")
    err = tampered(kit)
    assert err.file == "startup/start.sh"
    assert "not a regular file" in err.reason


def test_local_edits_do_not_break_the_signature(kit: Path) -> None:
    local = kit / "local"
    (local / "resources.json.default").write_text('{"num_of_gpus": 8}\n')
    (local / "authorization.json").write_text("{}\n")
    (local / "notes").mkdir()
    (kit / "log.txt").write_text("runtime output\n")
    verify_kit(kit)


def test_missing_or_garbled_signature_file(kit: Path) -> None:
    signature = kit / "startup" / "signature.json"
    signature.write_text("[1, 2]")
    assert tampered(kit).file == "startup/signature.json"
    signature.write_text('{"../x": "AAAA"}')
    assert tampered(kit).file == "startup/signature.json"
    signature.write_text('{"rootCA.pem": "not base64!"}')
    assert tampered(kit).file == "startup/signature.json"
    signature.unlink()
    err = tampered(kit)
    assert err.file == "startup/signature.json"
    assert "not signed" in err.reason


def test_a_file_dropped_from_the_signature_is_an_added_file(kit: Path) -> None:
    path = kit / "startup" / "signature.json"
    signatures = json.loads(path.read_text())
    del signatures["start.sh"]
    path.write_text(json.dumps(signatures))
    assert tampered(kit).file == "startup/start.sh"


def test_replaced_root_ca_is_named(kit: Path) -> None:
    (kit / "startup" / "rootCA.pem").write_bytes(create_ca("impostor").cert_pem)
    err = tampered(kit)
    assert err.file == "startup/rootCA.pem"
    (kit / "startup" / "rootCA.pem").write_text("garbage")
    assert tampered(kit).file == "startup/rootCA.pem"


def test_kit_resigned_by_another_ca_with_a_foreign_certificate(kit: Path, ca: CertKey) -> None:
    """A certificate not issued by the kit's CA is refused even when the kit is re-signed."""
    other = create_ca("other")
    startup = kit / "startup"
    foreign = write_participant(
        kit / "foreign", other, Identity("site-1", "acme", "client"), file_stem="client"
    )
    shutil.copyfile(foreign.cert, startup / "client.crt")
    sign_kit(kit, ca)
    err = tampered(kit)
    assert err.file == "startup/client.crt"
    assert "not issued by the kit's rootCA.pem" in err.reason


def test_expired_certificate_is_a_certificate_error(kit: Path, ca: CertKey) -> None:
    from datetime import UTC, datetime, timedelta
    from unittest import mock

    later = datetime.now(UTC) + timedelta(days=3000)
    with (
        mock.patch("fedra.pki.certs._now", return_value=later),
        pytest.raises(CertificateError, match="expired"),
    ):
        verify_kit(kit)


def test_sign_kit_refuses_another_ca_and_non_files(kit: Path, ca: CertKey) -> None:
    with pytest.raises(CertificateError, match="not the signing CA"):
        sign_kit(kit, create_ca("other"))
    (kit / "startup" / "sub").mkdir()
    with pytest.raises(CertificateError, match="only regular files"):
        sign_kit(kit, ca)
