"""How the overseer's calls travel: unary gRPC calls over mutual TLS, with signed answers.

Each call is one unary gRPC method whose path is the call's path under the kit's
``api_root`` (``/api/v1/heartbeat``, ``/api/v1/promote``, ``/api/v1/state``); request and
answer are the JSON of :mod:`.messages`, as raw bytes (no .proto). A refusal is a gRPC status
(:data:`CODES`) whose details are the overseer's one-line reason.

The client checks that it talks to *the overseer*, not merely to a holder of some certificate
of the project's CA that names the host (every server's names ``localhost``): it sends a
random nonce (:data:`NONCE_KEY`), and the overseer returns, in the answer's trailing metadata,
its certificate and its ECDSA signature over that nonce, the path and the answer
(:func:`sign_answer`). :func:`check_answer` accepts only a certificate issued by the CA with
the role ``overseer`` whose key made that signature. (gRPC's Python API does not show a
client the certificate of its TLS peer, so this is how the client sees it.)
"""

from __future__ import annotations

import hashlib

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedra.pki import CertificateError, Identity, identity_of, verify_issued_by

#: Request metadata: the client's random nonce (:data:`NONCE_BYTES` bytes).
NONCE_KEY = "fedra-nonce-bin"
NONCE_BYTES = 32
#: Trailing metadata of an answer: the overseer's certificate (PEM) and its signature.
CERT_KEY = "fedra-overseer-cert-bin"
SIGNATURE_KEY = "fedra-overseer-signature-bin"

#: The overseer's statuses (HTTP's numbers, see :mod:`.api`) as gRPC codes.
CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
#: The statuses a client reads from gRPC codes (others: the overseer is unavailable).
STATUSES: dict[grpc.StatusCode, int] = {code: status for status, code in CODES.items()}
#: Statuses that say the request itself is wrong (retrying it will not help).
REFUSALS = frozenset({400, 403, 404, 409})

_ALGORITHM = ec.ECDSA(hashes.SHA256())


def _signed(nonce: bytes, path: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).digest()
    return b"fedra-overseer-answer\0" + nonce + path.encode("utf-8") + b"\0" + digest


def load_signing_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    """The overseer's private key (EC, as provisioning makes it)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the overseer needs the EC key that provisioning made")
    return key


def sign_answer(key: ec.EllipticCurvePrivateKey, nonce: bytes, path: str, body: bytes) -> bytes:
    """The overseer's signature of the answer ``body`` to the call ``path`` with ``nonce``."""
    return key.sign(_signed(nonce, path, body), _ALGORITHM)


def check_answer(
    cert_pem: bytes, signature: bytes, ca_pem: bytes, nonce: bytes, path: str, body: bytes
) -> Identity:
    """The identity of the overseer that signed ``body``; CertificateError naming what failed
    (a certificate not issued by ``ca_pem``, of another role, or a signature that does not
    match)."""
    verify_issued_by(cert_pem, ca_pem)
    who = identity_of(cert_pem)
    if who.role != "overseer":
        raise CertificateError(
            f"its certificate is for {who.name!r} with role {who.role!r}, not the overseer"
        )
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("its certificate has no EC key")
    try:
        public_key.verify(signature, _signed(nonce, path, body), _ALGORITHM)
    except InvalidSignature:
        raise CertificateError(f"the answer is not signed by {who.name}") from None
    return who
