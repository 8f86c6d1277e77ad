"""Test certificates for the gRPC transport, made with ``cryptography`` directly.

Identity is the certificate: CN = participant name, O = org, OU = role. Server certificates
name ``localhost`` and ``127.0.0.1`` in their subject alternative name.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def make_ca(project: str = "test-project") -> tuple[Pem, ec.EllipticCurvePrivateKey]:
    """A self-signed root CA, and its key object for :func:`make_cert`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{project} root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), key


def make_cert(
    ca: Pem,
    ca_key: ec.EllipticCurvePrivateKey,
    name: str,
    org: str,
    role: str,
    *,
    server: bool = False,
) -> Pem:
    """A leaf certificate for (name, org, role) signed by ``ca``; servers get SANs."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        ]
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class Federation:
    """A CA with a server certificate and two client certificates, for tests."""

    ca: Pem
    server: Pem
    site: Pem
    admin: Pem
    ca_key: ec.EllipticCurvePrivateKey


def make_federation(project: str = "test-project") -> Federation:
    """A fresh CA, a server ``server``, a site ``site-1`` and an admin ``admin@org.org``."""
    ca, key = make_ca(project)
    return Federation(
        ca=ca,
        server=make_cert(ca, key, "server", "org-0", "server", server=True),
        site=make_cert(ca, key, "site-1", "org-1", "client"),
        admin=make_cert(ca, key, "admin@org.org", "org-1", "lead"),
        ca_key=key,
    )
