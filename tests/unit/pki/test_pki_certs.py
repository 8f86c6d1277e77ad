"""The root CA and leaf certificates: extensions, SANs, key usages, and verification."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedra.core import ConfigError
from fedra.pki import (
    CertificateError,
    CertKey,
    Identity,
    create_ca,
    issue,
    verify_issued_by,
)

SITE = Identity("site-1", "hospital-a", "client")
SERVER = Identity("server", "lead-org", "server")


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_is_a_ca(ca: CertKey) -> None:
    cert = load(ca.cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert cert.subject == cert.issuer
    assert "demo-project" in cert.subject.rfc4514_string()
    verify_issued_by(ca.cert_pem, ca.cert_pem)  # self-signed


def test_leaf_is_not_a_ca(ca: CertKey) -> None:
    leaf = issue(ca, SITE)
    cert = load(leaf.cert_pem)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    with pytest.raises(CertificateError, match="not a CA certificate"):
        verify_issued_by(leaf.cert_pem, leaf.cert_pem)


def test_verify_accepts_own_ca(ca: CertKey) -> None:
    verify_issued_by(issue(ca, SITE).cert_pem, ca.cert_pem)


def test_verify_rejects_another_cas_certificate(ca: CertKey, other_ca: CertKey) -> None:
    foreign = issue(other_ca, SITE)
    with pytest.raises(CertificateError, match="was not issued by CA"):
        verify_issued_by(foreign.cert_pem, ca.cert_pem)


def test_verify_rejects_a_look_alike_ca(ca: CertKey) -> None:
    # Same project name, same subject, different key: the signature decides.
    impostor = create_ca("demo-project")
    with pytest.raises(CertificateError, match="was not issued by CA"):
        verify_issued_by(issue(impostor, SITE).cert_pem, ca.cert_pem)


def test_verify_rejects_a_tampered_certificate(ca: CertKey) -> None:
    der = load(issue(ca, SITE).cert_pem).public_bytes(serialization.Encoding.DER)
    assert der.count(b"site-1") == 1
    tampered = load_der_as_pem(der.replace(b"site-1", b"site-9"))
    with pytest.raises(CertificateError, match="was not issued by CA"):
        verify_issued_by(tampered, ca.cert_pem)


def load_der_as_pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def test_verify_rejects_expired_and_not_yet_valid(ca: CertKey) -> None:
    leaf = issue(ca, SITE, valid_days=10)
    now = dt.datetime.now(dt.UTC)
    verify_issued_by(leaf.cert_pem, ca.cert_pem, at=now + dt.timedelta(days=9))
    with pytest.raises(CertificateError, match="expired on"):
        verify_issued_by(leaf.cert_pem, ca.cert_pem, at=now + dt.timedelta(days=11))
    with pytest.raises(CertificateError, match="not valid before"):
        verify_issued_by(leaf.cert_pem, ca.cert_pem, at=now - dt.timedelta(hours=1))


def test_verify_rejects_an_expired_ca() -> None:
    short_ca = create_ca("short", valid_days=1)
    leaf = issue(short_ca, SITE, valid_days=30)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(CertificateError, match="its CA certificate expired"):
        verify_issued_by(leaf.cert_pem, short_ca.cert_pem, at=later)


def test_verify_rejects_garbage(ca: CertKey) -> None:
    with pytest.raises(CertificateError, match="certificate is not a valid PEM"):
        verify_issued_by(b"junk", ca.cert_pem)
    with pytest.raises(CertificateError, match="CA certificate is not a valid PEM"):
        verify_issued_by(ca.cert_pem, b"junk")


def test_san_contains_dns_names_and_ip_addresses(ca: CertKey) -> None:
    hosts = ["localhost", "fl.example.org", "127.0.0.1", "::1"]
    cert = load(issue(ca, SERVER, hosts=hosts).cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "fl.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_no_san_without_hosts(ca: CertKey) -> None:
    cert = load(issue(ca, SITE).cert_pem)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize("hosts", ["localhost", [""], [" localhost"]])
def test_bad_hosts_are_refused(ca: CertKey, hosts: object) -> None:
    with pytest.raises(ConfigError, match="host"):
        issue(ca, SERVER, hosts=hosts)  # type: ignore[arg-type]


SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.mark.parametrize(
    ("role", "usages"),
    [
        ("server", {SERVER_AUTH, CLIENT_AUTH}),
        ("overseer", {SERVER_AUTH, CLIENT_AUTH}),
        ("client", {CLIENT_AUTH}),
        ("project_admin", {CLIENT_AUTH}),
        ("org_admin", {CLIENT_AUTH}),
        ("lead", {CLIENT_AUTH}),
        ("member", {CLIENT_AUTH}),
    ],
)
def test_extended_key_usage_per_role(
    ca: CertKey, role: str, usages: set[x509.ObjectIdentifier]
) -> None:
    cert = load(issue(ca, Identity("someone", "org", role)).cert_pem)
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages


def test_validity_and_random_serials(ca: CertKey) -> None:
    first, second = (load(issue(ca, SITE, valid_days=30).cert_pem) for _ in range(2))
    assert first.serial_number != second.serial_number
    assert first.serial_number.bit_length() > 64
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime == dt.timedelta(days=30)
    assert first.not_valid_before_utc <= dt.datetime.now(dt.UTC)


def test_valid_days_must_be_positive(ca: CertKey) -> None:
    with pytest.raises(ConfigError, match="valid_days"):
        issue(ca, SITE, valid_days=0)
    with pytest.raises(ConfigError, match="valid_days"):
        create_ca("p", valid_days=-1)
    with pytest.raises(ConfigError, match="project"):
        create_ca(" ")


def test_issue_refuses_a_ca_key_that_does_not_match(ca: CertKey, other_ca: CertKey) -> None:
    mixed = CertKey(cert_pem=ca.cert_pem, key_pem=other_ca.key_pem)
    with pytest.raises(CertificateError, match="does not belong"):
        issue(mixed, SITE)


def test_issue_refuses_a_bad_ca_key(ca: CertKey) -> None:
    with pytest.raises(CertificateError, match="CA private key"):
        issue(CertKey(cert_pem=ca.cert_pem, key_pem=b"junk"), SITE)


def test_repr_hides_the_private_key(ca: CertKey) -> None:
    assert b"PRIVATE KEY" in ca.key_pem
    assert "PRIVATE" not in repr(ca)
    assert "key_pem" not in repr(ca)
