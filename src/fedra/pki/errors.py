"""The one error the PKI raises for a certificate, key or TLS file it cannot use."""

from __future__ import annotations

from fedra.core import FedraError


class CertificateError(FedraError):
    """A certificate, private key or TLS file is missing, unreadable, malformed or untrusted.

    Exit code 7. The message names the file or the certificate and what is wrong with it.
    """

    exit_code = 7
