"""Certificates and keys on disk: the startup-kit layout, and private keys written safely.

A participant's folder holds ``rootCA.pem`` (the project's CA), ``<name>.crt`` and
``<name>.key``. Keys are created 0600 from the first byte (never written then chmod-ed), and
no file is written through a symbolic link, so a planted link cannot redirect a key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedra.pki.certs import CertKey, issue
from fedra.pki.errors import CertificateError
from fedra.pki.identity import Identity

#: File name of the project's root CA certificate in a startup kit.
ROOT_CA_FILE = "rootCA.pem"

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_key(path: Path, key_pem: bytes) -> None:
    """Write a private key readable by its owner only (mode 0600); refuse a symlink at ``path``."""
    _write_private(path, key_pem, mode=0o600)


@dataclass(frozen=True)
class TlsFiles:
    """Where a process finds its TLS material: the CA certificate, its certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, folder: Path, name: str) -> TlsFiles:
        """The startup-kit layout: ``folder/rootCA.pem``, ``folder/<name>.crt``, ``.key``."""
        folder = Path(folder)
        return cls(
            ca=folder / ROOT_CA_FILE, cert=folder / f"{name}.crt", key=folder / f"{name}.key"
        )

    def load(self) -> tuple[bytes, bytes, bytes]:
        """The PEM bytes of (CA certificate, certificate, private key).

        Raises :class:`CertificateError` naming the file that is missing, unreadable or not PEM.
        """
        return (
            _read_pem(self.ca, "CA certificate"),
            _read_pem(self.cert, "certificate"),
            _read_pem(self.key, "private key"),
        )


def write_participant(
    folder: Path,
    ca: CertKey,
    identity: Identity,
    *,
    file_stem: str,
    hosts: Sequence[str] = (),
) -> TlsFiles:
    """Issue a certificate for ``identity`` and write it, its key and the CA into ``folder``.

    The folder is created with mode 0700 when missing; the key is written 0600.
    """
    if not file_stem or Path(file_stem).name != file_stem or file_stem in {".", ".."}:
        raise CertificateError(f"file_stem must be a plain file name, got {file_stem!r}")
    leaf = issue(ca, identity, hosts=hosts)
    folder = Path(folder)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise CertificateError(f"cannot create folder {folder}: {err.strerror or err}") from err
    files = TlsFiles.in_dir(folder, file_stem)
    _write_private(files.ca, ca.cert_pem, mode=0o644)
    _write_private(files.cert, leaf.cert_pem, mode=0o644)
    write_key(files.key, leaf.key_pem)
    return files


def _write_private(path: Path, data: bytes, *, mode: int) -> None:
    path = Path(path)
    if path.is_symlink():
        raise CertificateError(f"refusing to write {path}: it is a symbolic link")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except OSError as err:
        raise CertificateError(f"cannot write {path}: {err.strerror or err}") from err
    try:
        # An existing file keeps its old mode on O_CREAT; narrow it before writing any byte.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as err:
        raise CertificateError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        os.close(fd)


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as err:
        raise CertificateError(f"{what} file not found: {path}") from err
    except OSError as err:
        raise CertificateError(f"cannot read {what} file {path}: {err.strerror or err}") from err
    if b"-----BEGIN " not in data:
        raise CertificateError(f"{what} file {path} is not in PEM format")
    return data
