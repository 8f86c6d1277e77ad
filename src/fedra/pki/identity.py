"""Who a certificate speaks for: a name (the CN), an organisation (O) and a role (OU).

Fedra's identity is the certificate: the CN is the site name, ``server`` or an admin's e-mail;
authorization policies read the org and role from the same certificate, so they are validated
here, once, for every certificate Fedra issues or reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fedra.core import ConfigError

#: Roles of the processes of a federation.
PARTICIPANT_ROLES = frozenset({"server", "client", "overseer"})
#: Roles of people who use the admin console or API.
ADMIN_ROLES = frozenset({"project_admin", "org_admin", "lead", "member"})
#: Every role a certificate may carry in its OU.
ROLES = PARTICIPANT_ROLES | ADMIN_ROLES
#: Roles whose certificates may authenticate a TLS server (extended key usage serverAuth).
SERVER_AUTH_ROLES = frozenset({"server", "overseer"})

# RFC 5280 upper bounds for the CN (ub-common-name) and O (ub-organization-name).
_MAX_NAME = 64


@dataclass(frozen=True)
class Identity:
    """The subject of a Fedra certificate: CN = ``name``, O = ``org``, OU = ``role``.

    Raises :class:`fedra.core.ConfigError` when a field is empty, too long for a certificate
    or the role is not one of :data:`ROLES`.
    """

    name: str
    org: str
    role: str
    #: SHA-256 of the certificate (lowercase hex) when read from one, for revocation; not part
    #: of the identity's equality.
    fingerprint: str = dataclasses.field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        for field, value in (("name", self.name), ("org", self.org)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"identity {field} must be a non-empty string, got {value!r}")
            if len(value) > _MAX_NAME:
                raise ConfigError(
                    f"identity {field} must be at most {_MAX_NAME} characters, got {value!r}"
                )
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise ConfigError(f"identity {field} contains control characters: {value!r}")
        if self.role not in ROLES:
            raise ConfigError(
                f"identity role must be one of {', '.join(sorted(ROLES))}, got {self.role!r}"
            )

    @property
    def is_admin(self) -> bool:
        """Whether this identity is a person using the admin API rather than a process."""
        return self.role in ADMIN_ROLES
