"""Fedra's public-key infrastructure: the project CA, participant certificates, TLS files.

Identity is the certificate: CN = name, O = org, OU = role. A project's root CA issues one
certificate per server, site, overseer and admin; every connection is mutual TLS against that
CA. Keys are EC P-256; private keys are written 0600 and never through symbolic links.
"""

from fedra.pki.certs import (
    CLOCK_SKEW,
    CertKey,
    create_ca,
    identity_of,
    issue,
    verify_issued_by,
)
from fedra.pki.errors import CertificateError, KitTampered
from fedra.pki.files import ROOT_CA_FILE, TlsFiles, write_key, write_participant
from fedra.pki.identity import (
    ADMIN_ROLES,
    PARTICIPANT_ROLES,
    ROLES,
    SERVER_AUTH_ROLES,
    Identity,
)
from fedra.pki.jobsign import sign_job, verify_job
from fedra.pki.signing import LOCAL_DIR, SIGNATURE_FILE, STARTUP_DIR, sign_kit, verify_kit

__all__ = [
    "ADMIN_ROLES",
    "CLOCK_SKEW",
    "LOCAL_DIR",
    "PARTICIPANT_ROLES",
    "ROLES",
    "ROOT_CA_FILE",
    "SERVER_AUTH_ROLES",
    "SIGNATURE_FILE",
    "STARTUP_DIR",
    "CertKey",
    "CertificateError",
    "Identity",
    "KitTampered",
    "TlsFiles",
    "create_ca",
    "identity_of",
    "issue",
    "sign_job",
    "sign_kit",
    "verify_issued_by",
    "verify_job",
    "verify_kit",
    "write_key",
    "write_participant",
]
