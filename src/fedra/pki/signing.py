"""Sign a startup kit with the project's root CA, and check a kit against its signature.

``startup/signature.json`` maps every file of ``startup/`` (but itself) to the base64 ECDSA
(SHA-256) signature of its bytes by the root CA's key. :func:`verify_kit` checks each file
against ``startup/rootCA.pem``, refuses a file that was changed, removed or added, and checks
that the participant's certificate was issued by that CA. ``local/`` is never signed: it holds
the settings a participant may edit.

Trust model: the kit carries its own CA certificate, so this check catches accidental and
casual edits of a kit, not an attacker who re-provisions the whole ``startup/`` folder with a
CA of their own. That kit would verify, but its certificates are not trusted by the other
participants, which hold the project's real CA: mutual TLS refuses it at the first connection.
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedra.pki.certs import CertKey, verify_issued_by
from fedra.pki.errors import CertificateError, KitTampered
from fedra.pki.files import ROOT_CA_FILE

#: The signature file of a startup kit, in ``startup/``.
SIGNATURE_FILE = "signature.json"
#: The signed folder of a kit, and the folder of editable settings that is never signed.
STARTUP_DIR = "startup"
LOCAL_DIR = "local"

_MAX_SIGNATURE_BYTES = 1 << 20
_ALGORITHM = ec.ECDSA(hashes.SHA256())


def sign_kit(folder: Path, ca: CertKey) -> Path:
    """Write ``folder/startup/signature.json``, signing every file of ``startup/`` with ``ca``.

    Returns the path of the signature file. Refuses a kit whose ``rootCA.pem`` is not ``ca``'s
    certificate, and a ``startup/`` holding anything but regular files.
    """
    startup = Path(folder) / STARTUP_DIR
    key = _private_key(ca)
    ca_file = startup / ROOT_CA_FILE
    try:
        kit_ca = ca_file.read_bytes()
    except OSError as err:
        raise CertificateError(f"cannot sign {folder}: cannot read {ca_file}: {err}") from err
    if _load_cert(kit_ca, ca_file).public_key() != key.public_key():
        raise CertificateError(f"cannot sign {folder}: {ca_file} is not the signing CA")
    signatures: dict[str, str] = {}
    for path in sorted(startup.iterdir()):
        if path.name == SIGNATURE_FILE:
            continue
        if path.is_symlink() or not path.is_file():
            raise CertificateError(f"cannot sign {path}: only regular files belong in startup/")
        signature = key.sign(path.read_bytes(), _ALGORITHM)
        signatures[path.name] = base64.b64encode(signature).decode("ascii")
    target = startup / SIGNATURE_FILE
    if target.is_symlink():
        raise CertificateError(f"refusing to write {target}: it is a symbolic link")
    target.write_text(json.dumps(signatures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def verify_kit(folder: Path) -> None:
    """Check ``folder/startup`` against its signature; return ``None`` when it is intact.

    Raises :class:`KitTampered` naming the first file (relative to the kit) that was changed,
    removed, added, or is not a regular file, and when the participant's certificate was not
    issued by the kit's ``rootCA.pem``. Raises :class:`CertificateError` when that
    certificate (or the CA) has expired or is not valid yet.
    """
    kit = Path(folder)
    startup = kit / STARTUP_DIR
    listed = _signatures(kit)
    if ROOT_CA_FILE not in listed:
        raise KitTampered(kit, _rel(ROOT_CA_FILE), "missing from signature.json")
    ca_pem = _read(kit, ROOT_CA_FILE)
    ca_cert = _kit_cert(kit, ROOT_CA_FILE, ca_pem)
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise KitTampered(kit, _rel(ROOT_CA_FILE), "not an EC certificate as provisioning makes")
    # The CA first: a replaced rootCA.pem must be named, not the first file it fails to verify.
    for name in [ROOT_CA_FILE, *sorted(set(listed) - {ROOT_CA_FILE})]:
        signature = _decode(kit, name, listed[name])
        try:
            public_key.verify(signature, _read(kit, name), _ALGORITHM)
        except InvalidSignature:
            raise KitTampered(kit, _rel(name), "changed since the kit was signed") from None
    added = sorted({p.name for p in startup.iterdir()} - set(listed) - {SIGNATURE_FILE})
    if added:
        raise KitTampered(kit, _rel(added[0]), "added after the kit was signed")
    for name in sorted(n for n in listed if n.endswith(".crt")):
        cert_pem = _read(kit, name)
        try:
            _kit_cert(kit, name, cert_pem).verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise KitTampered(kit, _rel(name), "not issued by the kit's rootCA.pem") from None
        verify_issued_by(cert_pem, ca_pem)


def _signatures(kit: Path) -> dict[str, str]:
    path = kit / STARTUP_DIR / SIGNATURE_FILE
    where = _rel(SIGNATURE_FILE)
    if path.is_symlink() or not path.is_file():
        raise KitTampered(kit, where, "missing: the kit is not signed")
    if path.stat().st_size > _MAX_SIGNATURE_BYTES:
        raise KitTampered(kit, where, f"larger than {_MAX_SIGNATURE_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KitTampered(kit, where, "not valid JSON") from None
    valid = isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, str) and _plain_name(k) for k, v in data.items()
    )
    if not valid:
        raise KitTampered(kit, where, "expected a JSON object of file name: signature")
    return dict(data)


def _read(kit: Path, name: str) -> bytes:
    path = kit / STARTUP_DIR / name
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise KitTampered(kit, _rel(name), "removed since the kit was signed") from None
    if not stat.S_ISREG(mode):
        raise KitTampered(kit, _rel(name), "not a regular file (a link or a folder)")
    return path.read_bytes()


def _decode(kit: Path, name: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KitTampered(kit, _rel(SIGNATURE_FILE), f"bad signature for {name}") from None


def _plain_name(name: str) -> bool:
    return bool(name) and name not in {".", ".."} and "/" not in name and "\\" not in name


def _rel(name: str) -> str:
    return f"{STARTUP_DIR}/{name}"


def _kit_cert(kit: Path, name: str, pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise KitTampered(kit, _rel(name), "not a valid PEM certificate") from None


def _load_cert(pem: bytes, path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise CertificateError(f"{path} is not a valid PEM certificate") from err


def _private_key(ca: CertKey) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise CertificateError("the CA private key is not a valid unencrypted PEM key") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA private key must be an EC key, as create_ca() makes")
    return key
