"""The one error the PKI raises for a certificate, key or TLS file it cannot use."""

from __future__ import annotations

from pathlib import Path

from fedra.core import FedraError


class CertificateError(FedraError):
    """A certificate, private key or TLS file is missing, unreadable, malformed or untrusted.

    Exit code 7. The message names the file or the certificate and what is wrong with it.
    """

    exit_code = 7


class KitTampered(FedraError):
    """A startup kit's ``startup/`` folder no longer matches its signature.

    ``file`` names the changed, missing or added file (relative to the kit), ``reason`` says
    which of those it is. A process refuses to start from such a kit.
    """

    exit_code = 9
    hint = "use the kit as provisioned (re-provision it, or unzip it again); edit only local/"

    def __init__(self, kit: Path, file: str, reason: str) -> None:
        self.kit = kit
        self.file = file
        self.reason = reason
        super().__init__(f"startup kit {kit} was tampered with: {file}: {reason}")
