"""Keys and certificates on disk: 0600 keys, no symlinks, the startup-kit layout, clear errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fedra.pki import (
    ROOT_CA_FILE,
    CertificateError,
    CertKey,
    Identity,
    TlsFiles,
    identity_of,
    verify_issued_by,
    write_key,
    write_participant,
)

SITE = Identity("site-1", "hospital-a", "client")
KEY = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_write_key_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    old = os.umask(0)  # even a permissive umask must not widen the key's mode
    try:
        write_key(path, KEY)
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert path.read_bytes() == KEY


def test_write_key_narrows_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    path.write_bytes(b"old and longer than the new key " * 10)
    path.chmod(0o644)
    write_key(path, KEY)
    assert mode(path) == 0o600
    assert path.read_bytes() == KEY


def test_write_key_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    link = tmp_path / "site.key"
    link.symlink_to(target)
    with pytest.raises(CertificateError, match=r"site\.key.*symbolic link"):
        write_key(link, KEY)
    assert target.read_bytes() == b"precious"


def test_write_key_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "site.key"
    link.symlink_to(tmp_path / "planted")
    with pytest.raises(CertificateError, match="symbolic link"):
        write_key(link, KEY)
    assert not (tmp_path / "planted").exists()


def test_write_key_names_the_path_on_failure(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=r"cannot write .*missing"):
        write_key(tmp_path / "missing" / "site.key", KEY)


def test_in_dir_is_the_startup_kit_layout(tmp_path: Path) -> None:
    files = TlsFiles.in_dir(tmp_path, "server")
    assert files == TlsFiles(
        ca=tmp_path / ROOT_CA_FILE, cert=tmp_path / "server.crt", key=tmp_path / "server.key"
    )
    assert ROOT_CA_FILE == "rootCA.pem"


def test_write_participant_writes_a_usable_kit(tmp_path: Path, ca: CertKey) -> None:
    folder = tmp_path / "kits" / "site-1" / "startup"
    files = write_participant(folder, ca, SITE, file_stem="client")
    assert files == TlsFiles.in_dir(folder, "client")
    assert mode(folder) == 0o700
    assert mode(files.key) == 0o600
    ca_pem, cert_pem, key_pem = files.load()
    assert ca_pem == ca.cert_pem
    assert identity_of(cert_pem) == SITE
    verify_issued_by(cert_pem, ca_pem)
    assert b"PRIVATE KEY" in key_pem


def test_write_participant_keeps_an_existing_folder(tmp_path: Path, ca: CertKey) -> None:
    tmp_path.chmod(0o755)
    files = write_participant(tmp_path, ca, SITE, file_stem="client")
    assert mode(tmp_path) == 0o755
    assert files.key.parent == tmp_path


def test_write_participant_refuses_a_symlinked_certificate(tmp_path: Path, ca: CertKey) -> None:
    (tmp_path / "client.crt").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CertificateError, match=r"client\.crt.*symbolic link"):
        write_participant(tmp_path, ca, SITE, file_stem="client")


@pytest.mark.parametrize("stem", ["", ".", "..", "../client", "a/b"])
def test_write_participant_refuses_a_path_as_file_stem(
    tmp_path: Path, ca: CertKey, stem: str
) -> None:
    with pytest.raises(CertificateError, match="file_stem"):
        write_participant(tmp_path, ca, SITE, file_stem=stem)


@pytest.mark.parametrize(
    ("missing", "label"),
    [("ca", "CA certificate"), ("cert", "certificate"), ("key", "private key")],
)
def test_load_names_the_missing_file(tmp_path: Path, ca: CertKey, missing: str, label: str) -> None:
    files = write_participant(tmp_path, ca, SITE, file_stem="client")
    path: Path = getattr(files, missing)
    path.unlink()
    with pytest.raises(CertificateError, match=f"{label} file not found") as err:
        files.load()
    assert str(path) in str(err.value)


def test_load_names_an_unreadable_file(tmp_path: Path, ca: CertKey) -> None:
    files = write_participant(tmp_path, ca, SITE, file_stem="client")
    files.cert.unlink()
    files.cert.mkdir()  # reading a directory fails with an OSError other than "not found"
    with pytest.raises(CertificateError, match="cannot read certificate file") as err:
        files.load()
    assert str(files.cert) in str(err.value)


def test_load_names_a_file_that_is_not_pem(tmp_path: Path, ca: CertKey) -> None:
    files = write_participant(tmp_path, ca, SITE, file_stem="client")
    files.ca.write_bytes(b"\x00binary")
    with pytest.raises(CertificateError, match="not in PEM format") as err:
        files.load()
    assert str(files.ca) in str(err.value)
