"""Identities from X.509 certificates: CN = name, O = org, OU = role."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from fedra.transport.connection import PeerIdentity


def _attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    attrs = cert.subject.get_attributes_for_oid(oid)
    if not attrs:
        return ""
    value = attrs[0].value
    return value.decode() if isinstance(value, bytes) else value


def identity_of_cert(cert: x509.Certificate) -> PeerIdentity:
    """The identity ``cert`` speaks for."""
    return PeerIdentity(
        name=_attribute(cert, NameOID.COMMON_NAME),
        org=_attribute(cert, NameOID.ORGANIZATION_NAME),
        role=_attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def identity_of_pem(cert_pem: bytes) -> PeerIdentity:
    """The identity a PEM certificate speaks for; ValueError if it is not a certificate."""
    return identity_of_cert(x509.load_pem_x509_certificate(cert_pem))


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def _names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether ``cert`` is valid for ``host``, as a TLS client checks it (SAN, else CN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return _dns_match(_attribute(cert, NameOID.COMMON_NAME), host)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return any(_dns_match(name, host) for name in san.get_values_for_type(x509.DNSName))
    return address in san.get_values_for_type(x509.IPAddress)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_server_cert(cert_pem: bytes, ca_pem: bytes, host: str | None) -> PeerIdentity:
    """The identity of the server certificate ``cert_pem`` a server announced.

    The TLS handshake already verified the server against ``ca_pem`` and ``host``; this checks
    that the certificate it announces passes the same test (issued by the CA, valid now, naming
    ``host`` when given). Raises ValueError naming what failed.
    """
    cert = x509.load_pem_x509_certificate(cert_pem)
    if not any(_issued_by(cert, ca) for ca in x509.load_pem_x509_certificates(ca_pem)):
        raise ValueError("the server's certificate is not issued by the CA")
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ValueError("the server's certificate is not valid now")
    if host is not None and not _names_host(cert, host):
        raise ValueError(f"the server's certificate does not name {host!r}")
    return identity_of_cert(cert)
