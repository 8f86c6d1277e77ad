"""The hostile set-up itself: every admin of the review connects with its own role."""

from __future__ import annotations

from tests.e2e.provisioned import ProvisionedFederation
from tests.security.conftest import ADMINS


def test_every_reviewed_admin_connects(hostile: ProvisionedFederation) -> None:
    for admin in ADMINS:
        with hostile.session(admin) as session:
            assert session.server_status().status == "started"
