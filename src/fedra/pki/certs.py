"""Create a project's root CA, issue leaf certificates from it, and read and check them.

Keys are EC P-256 (ECDSA with SHA-256): small, fast to generate, and accepted by OpenSSL,
BoringSSL (gRPC) and Python's :mod:`ssl`. Certificates carry the extensions strict verifiers
(``VERIFY_X509_STRICT``) ask for: critical basic constraints and key usage, subject and
authority key identifiers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedra.core import ConfigError
from fedra.pki.errors import CertificateError
from fedra.pki.identity import SERVER_AUTH_ROLES, Identity

#: Certificates start this long before "now", so peers with slightly slow clocks accept them.
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CertKey:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key.

    The key is left out of ``repr`` so that logging a ``CertKey`` never leaks it.
    """

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def create_ca(project: str, *, valid_days: int = 3650) -> CertKey:
    """A self-signed root CA for ``project``: the trust anchor of every certificate it issues."""
    if not project.strip():
        raise ConfigError("project name for the root CA must not be empty")
    _check_days(valid_days)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{project[:56]} Root CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, project[:64]),
        ]
    )
    not_before = _now() - CLOCK_SKEW
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    cert = builder.sign(key, hashes.SHA256())
    return CertKey(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def issue(
    ca: CertKey, identity: Identity, *, hosts: Sequence[str] = (), valid_days: int = 825
) -> CertKey:
    """A leaf certificate for ``identity``, signed by ``ca``.

    ``hosts`` (DNS names or IP addresses) go into the subject alternative name; TLS clients
    check the server's address against them. Servers and overseers may authenticate as TLS
    servers and clients; everyone else only as a TLS client.
    """
    _check_days(valid_days)
    ca_cert = _load_cert(ca.cert_pem, "CA certificate")
    ca_key = _load_ca_key(ca.key_pem)
    if ca_key.public_key() != ca_cert.public_key():
        raise CertificateError("the CA private key does not belong to the CA certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, identity.name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.role),
        ]
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if identity.role in SERVER_AUTH_ROLES:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    not_before = _now() - CLOCK_SKEW
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def identity_of(cert_pem: bytes) -> Identity:
    """The :class:`Identity` a certificate speaks for (CN, O and OU of its subject)."""
    cert = _load_cert(cert_pem, "certificate")
    values: list[str] = []
    for oid, label in (
        (NameOID.COMMON_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, "O"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    ):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if len(attrs) != 1:
            raise CertificateError(
                f"certificate {cert.subject.rfc4514_string()!r} must have exactly one {label}, "
                f"has {len(attrs)}"
            )
        value = attrs[0].value
        values.append(value.decode() if isinstance(value, bytes) else value)
    try:
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        return Identity(name=values[0], org=values[1], role=values[2], fingerprint=fingerprint)
    except ConfigError as err:
        raise CertificateError(f"certificate subject is not a Fedra identity: {err}") from err


def verify_issued_by(cert_pem: bytes, ca_cert_pem: bytes, *, at: dt.datetime | None = None) -> None:
    """Raise :class:`CertificateError` unless ``ca_cert_pem`` signed ``cert_pem`` and both
    are valid at ``at`` (default: now)."""
    cert = _load_cert(cert_pem, "certificate")
    ca_cert = _load_cert(ca_cert_pem, "CA certificate")
    who = cert.subject.rfc4514_string()
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError(f"{ca_cert.subject.rfc4514_string()!r} is not a CA certificate")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise CertificateError(
            f"certificate {who!r} was not issued by CA {ca_cert.subject.rfc4514_string()!r}"
        ) from err
    when = at or _now()
    for checked, label in ((cert, f"certificate {who!r}"), (ca_cert, "its CA certificate")):
        if when < checked.not_valid_before_utc:
            raise CertificateError(
                f"{label} is not valid before {checked.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        if when > checked.not_valid_after_utc:
            raise CertificateError(
                f"{label} expired on {checked.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )


def _san(hosts: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(hosts, str):
        raise ConfigError(f"hosts must be a sequence of host names, not the string {hosts!r}")
    names: list[x509.GeneralName] = []
    for host in hosts:
        if not host or not host.strip() or host != host.strip():
            raise ConfigError(f"host names must be non-empty without spaces, got {host!r}")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _check_days(valid_days: int) -> None:
    if valid_days < 1:
        raise ConfigError(f"valid_days must be at least 1, got {valid_days}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise CertificateError(f"{what} is not a valid PEM certificate: {err}") from err


def _load_ca_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        raise CertificateError(f"CA private key is not a valid unencrypted PEM key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("CA private key must be an EC key, as create_ca() makes")
    return key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
