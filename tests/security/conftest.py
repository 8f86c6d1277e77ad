"""Federations for the security tests: each finding is replayed against real processes.

``hostile`` is the reviewed set-up: a provisioned federation of two orgs with every admin
role. Modules that kill or restart participants start their own with
:func:`start_federation`; the POC ``federation`` fixture of the e2e tests is re-exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import federation, read, wait_for
from tests.e2e.provisioned import SERVER, ProvisionedFederation, free_ports, provision_project

__all__ = ["federation", "hostile", "start_federation"]

SITE_A, SITE_B = "site-a", "site-b"
PROJECT_ADMIN = "admin@central.org"
ORG_ADMIN_A = "orgadmin@org-a.org"
LEAD_A = "lead@org-a.org"
MEMBER_A = "member@org-a.org"
LEAD_B = "lead@org-b.org"
ADMINS = (PROJECT_ADMIN, ORG_ADMIN_A, LEAD_A, MEMBER_A, LEAD_B)

PARTICIPANTS = f"""\
  - {{name: {SITE_A}, type: client, org: org-a, enable_byoc: true}}
  - {{name: {SITE_B}, type: client, org: org-b, enable_byoc: true}}
  - {{name: {PROJECT_ADMIN}, type: admin, org: central, role: project_admin}}
  - {{name: {ORG_ADMIN_A}, type: admin, org: org-a, role: org_admin}}
  - {{name: {LEAD_A}, type: admin, org: org-a, role: lead}}
  - {{name: {MEMBER_A}, type: admin, org: org-a, role: member}}
  - {{name: {LEAD_B}, type: admin, org: org-b, role: lead}}"""


def start_federation(
    root: Path,
    participants: str = PARTICIPANTS,
    sites: tuple[str, ...] = (SITE_A, SITE_B),
    *,
    server_byoc: bool = True,
) -> ProvisionedFederation:
    """Provision ``participants`` under ``root`` and start the server and ``sites``
    (``server_byoc``: the server's ``enable_byoc``)."""
    fed_port, admin_port = free_ports()
    kits = provision_project(
        root, "security", fed_port, admin_port, participants, server_byoc=server_byoc
    )
    fed = ProvisionedFederation(kits, fed_port, admin_port)
    try:
        fed.start(SERVER)

        def listening() -> bool:
            fed.check_alive()
            return "listening" in read(kits[SERVER] / "log.txt")

        wait_for(listening, 60, f"{SERVER} to listen")
        for site in sites:
            fed.start(site)
        with fed.session(PROJECT_ADMIN) as admin:

            def connected() -> bool:
                fed.check_alive()
                names = sorted(s.name for s in admin.sites_status().sites)
                return names == sorted(sites)

            wait_for(connected, 60, f"sites {list(sites)} to connect")
    except BaseException:
        fed.stop_all()
        raise
    return fed


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """The module's provisioned federation: server1, site-a (org-a), site-b (org-b) and the
    admins project_admin (central), org_admin, lead and member (org-a) and lead (org-b)."""
    fed = start_federation(tmp_path_factory.mktemp("hostile"))
    try:
        yield fed
    finally:
        fed.stop_all()
