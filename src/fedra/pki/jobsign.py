"""Signing job archives: an admin signs what they submit; the server and every site check it.

The signature is ECDSA (SHA-256) over the exact bytes of the job zip, by the submitting
admin's private key. A checker accepts it only with the admin's certificate, issued by the
project's root CA, whose identity (name, org, role) then says who submitted the job: sites
take the submitter's role from that certificate, never from what the server claims.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedra.pki.certs import identity_of, verify_issued_by
from fedra.pki.errors import CertificateError
from fedra.pki.identity import Identity

_ALGORITHM = ec.ECDSA(hashes.SHA256())


def sign_job(data: bytes, key_pem: bytes) -> str:
    """The base64 signature of ``data`` by the private key ``key_pem``."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("job signing needs the EC key that provisioning made")
    return base64.b64encode(key.sign(data, _ALGORITHM)).decode("ascii")


def verify_job(data: bytes, signature: str, cert_pem: bytes, ca_pem: bytes) -> Identity:
    """Check ``signature`` over ``data`` by the holder of ``cert_pem``, issued by ``ca_pem``.

    Returns the signer's identity; raises CertificateError with the reason otherwise.
    """
    verify_issued_by(cert_pem, ca_pem)
    identity = identity_of(cert_pem)
    if not identity.is_admin:
        raise CertificateError(f"jobs are signed by admins, not by a {identity.role!r}")
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CertificateError("the job signature is not base64") from exc
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("the signer's certificate has no EC key")
    try:
        public_key.verify(raw, data, _ALGORITHM)
    except InvalidSignature:
        raise CertificateError(
            f"the job archive does not match the signature of {identity.name}"
        ) from None
    return identity
