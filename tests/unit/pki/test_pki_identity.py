"""Identity: validated on construction, carried in CN/O/OU, read back from certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedra.core import ConfigError
from fedra.pki import (
    ADMIN_ROLES,
    PARTICIPANT_ROLES,
    ROLES,
    CertificateError,
    CertKey,
    Identity,
    identity_of,
    issue,
)


@pytest.mark.parametrize(
    "identity",
    [
        Identity("site-1", "hospital-a", "client"),
        Identity("server", "nvidia", "server"),
        Identity("overseer", "nvidia", "overseer"),
        *(Identity("admin@example.org", "example", role) for role in sorted(ADMIN_ROLES)),
    ],
    ids=str,
)
def test_identity_round_trips_through_a_certificate(ca: CertKey, identity: Identity) -> None:
    leaf = issue(ca, identity)
    assert identity_of(leaf.cert_pem) == identity


def test_roles_are_participants_and_admins() -> None:
    assert ROLES == PARTICIPANT_ROLES | ADMIN_ROLES
    assert Identity("a@b.org", "b", "lead").is_admin
    assert not Identity("site-1", "b", "client").is_admin


@pytest.mark.parametrize(
    ("name", "org", "role", "message"),
    [
        ("", "org", "client", "name"),
        ("  ", "org", "client", "name"),
        ("site-1", "", "client", "org"),
        ("x" * 65, "org", "client", "at most 64"),
        ("site\n1", "org", "client", "control"),
        ("site-1", "org", "root", "role must be one of"),
    ],
)
def test_identity_rejects_invalid_fields(name: str, org: str, role: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Identity(name, org, role)


def test_identity_of_rejects_a_certificate_without_role(ca: CertKey) -> None:
    # The CA's own subject has a CN and an O but no OU.
    with pytest.raises(CertificateError, match="exactly one OU"):
        identity_of(ca.cert_pem)


def test_identity_of_rejects_garbage() -> None:
    with pytest.raises(CertificateError, match="not a valid PEM certificate"):
        identity_of(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_identity_of_rejects_unknown_role_in_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "mallory"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "root"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match=r"not a Fedra identity.*role"):
        identity_of(cert.public_bytes(serialization.Encoding.PEM))
