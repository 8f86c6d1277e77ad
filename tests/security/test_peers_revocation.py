"""L2: revocation, and admins checked against the project's list, with real processes.

Before the fix, every certificate of the project's CA was admitted for ever: an admin removed
from project.yml and re-provisioned still connected with the old kit. Now the project is
provisioned twice from one CA: the second time lead@org-b is removed and site-b and
member@org-a are revoked. The server and site-a run the new kits; the old kits of the three
others are refused, each with a clear message and one line in the server's log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.admin import AdminError, Session
from tests.e2e.conftest import read, wait_for
from tests.e2e.jobs import arithmetic_job
from tests.e2e.provisioned import SERVER, ProvisionedFederation, free_ports, provision_project
from tests.security.conftest import (
    LEAD_B,
    MEMBER_A,
    PARTICIPANTS,
    PROJECT_ADMIN,
    SITE_A,
    SITE_B,
)

pytestmark = pytest.mark.timeout(300)

REVOKED = (SITE_B, MEMBER_A)


def second_provisioning() -> str:
    """The participants without lead@org-b (removed), site-b and member@org-a (revoked)."""
    kept = [
        line
        for line in PARTICIPANTS.splitlines()
        if not any(f"name: {name}," in line for name in (LEAD_B, *REVOKED))
    ]
    return "\n".join(kept) + f"\nrevoked: [{', '.join(REVOKED)}]"


@pytest.fixture(scope="module")
def reprovisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    root = tmp_path_factory.mktemp("revocation")
    fed_port, admin_port = free_ports()
    old = provision_project(root, "security", fed_port, admin_port, PARTICIPANTS)
    new = provision_project(root, "security", fed_port, admin_port, second_provisioning())
    assert old[SERVER].parent.name == "prod_00" and new[SERVER].parent.name == "prod_01"
    kits = {**new, **{name: old[name] for name in (SITE_B, MEMBER_A, LEAD_B)}}
    fed = ProvisionedFederation(kits, fed_port, admin_port)
    try:
        fed.start(SERVER)
        wait_for(lambda: "listening" in read(kits[SERVER] / "log.txt"), 60, "the server")
        fed.start(SITE_A)
        fed.start(SITE_B)
        yield fed
    finally:
        fed.stop_all()


def server_log(fed: ProvisionedFederation) -> str:
    return read(fed.kits[SERVER] / "log.txt")


def test_the_new_kits_carry_the_lists_in_their_signed_part(
    reprovisioned: ProvisionedFederation,
) -> None:
    config = json.loads((reprovisioned.kits[SERVER] / "startup" / "fed_server.json").read_text())
    assert sorted(config["revoked"]) == sorted(REVOKED)
    assert LEAD_B not in [a["name"] for a in config["admins"]]
    state = reprovisioned.kits[SERVER].parent.parent / "state" / "revoked.json"
    assert sorted(json.loads(state.read_text())["revoked"]) == sorted(REVOKED)


def test_a_revoked_site_is_refused(reprovisioned: ProvisionedFederation) -> None:
    fed = reprovisioned

    def refused() -> bool:
        fed.check_alive()
        return f"refused site {SITE_B} (org-b) on the FL port" in server_log(fed)

    wait_for(refused, 60, f"{SITE_B} to be refused")
    with Session.connect(fed.kits[PROJECT_ADMIN], timeout=15.0) as admin:

        def only_a() -> bool:
            return [s.name for s in admin.sites_status().sites] == [SITE_A]

        wait_for(only_a, 60, f"{SITE_A} alone")
    line = next(ln for ln in server_log(fed).splitlines() if f"refused site {SITE_B}" in ln)
    assert "revoked in this project" in line
    wait_for(
        lambda: f"site {SITE_B} is revoked in this project" in read(fed.kits[SITE_B] / "log.txt"),
        30,
        f"{SITE_B} to log why",
    )
    fed.check_alive()


@pytest.mark.parametrize(
    ("admin", "why"),
    [(LEAD_B, "is not an admin of this project"), (MEMBER_A, "is revoked in this project")],
)
def test_an_old_admin_kit_is_refused_at_connect(
    reprovisioned: ProvisionedFederation, admin: str, why: str
) -> None:
    fed = reprovisioned
    with pytest.raises(AdminError, match=rf"refused: {admin} \(\w+, [\w-]+\) {why}"):
        Session.connect(Path(fed.kits[admin]), timeout=15.0)
    lines = [ln for ln in server_log(fed).splitlines() if f"refused admin {admin}" in ln]
    assert lines and why in lines[-1], server_log(fed)
    with Session.connect(fed.kits[PROJECT_ADMIN], timeout=15.0) as still_in:
        assert still_in.check_status("server")
    fed.check_alive()


def test_a_site_refuses_a_job_signed_by_an_admin_its_kit_does_not_list(tmp_path: Path) -> None:
    """The site's own check, for a server that still runs an old kit (or lies): the server of
    the first provisioning admits lead@org-b, site-a of the second runs none of its jobs."""
    fed_port, admin_port = free_ports()
    old = provision_project(tmp_path, "security", fed_port, admin_port, PARTICIPANTS)
    new = provision_project(tmp_path, "security", fed_port, admin_port, second_provisioning())
    fed = ProvisionedFederation({**old, SITE_A: new[SITE_A]}, fed_port, admin_port)
    try:
        fed.start(SERVER)
        wait_for(lambda: "listening" in server_log(fed), 60, "the server")
        fed.start(SITE_A)
        with Session.connect(fed.kits[LEAD_B], timeout=15.0) as lead:
            wait_for(lambda: len(lead.sites_status().sites) == 1, 60, SITE_A)
            job = arithmetic_job(tmp_path / "job", tmp_path / "marks", min_clients=1)
            job_id = lead.submit_job(job)
        refusal = f"{SITE_A} refuses job {job_id}: its signer: {LEAD_B} (lead, org-b) is not an"
        wait_for(lambda: refusal in read(fed.kits[SITE_A] / "log.txt"), 60, "the refusal")
        assert not (fed.kits[SITE_A] / "jobs" / job_id / "log.txt").exists()  # never started
        fed.check_alive()
    finally:
        fed.stop_all()


def test_a_stolen_site_key_is_refused_by_its_fingerprint_and_the_site_keeps_its_name(
    tmp_path: Path,
) -> None:
    """site-a's key leaked: its certificate is revoked by fingerprint, site-a gets a new one
    in the next provisioning; the thief's copy of the old kit is refused, the site joins."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    fed_port, admin_port = free_ports()
    old = provision_project(tmp_path, "security", fed_port, admin_port, PARTICIPANTS)
    pem = (old[SITE_A] / "startup" / "client.crt").read_bytes()
    fingerprint = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()
    revoked = f'{PARTICIPANTS}\nrevoked: ["sha256:{fingerprint}"]'
    new = provision_project(tmp_path, "security", fed_port, admin_port, revoked)
    fed = ProvisionedFederation({**new, "thief": old[SITE_A]}, fed_port, admin_port)
    try:
        fed.start(SERVER)
        wait_for(lambda: "listening" in server_log(fed), 60, "the server")
        fed.start("thief")
        refusal = (
            f"refused site {SITE_A} (org-a) on the FL port: the certificate of {SITE_A} "
            f"(sha256:{fingerprint[:16]}…) is revoked in this project"
        )
        wait_for(lambda: refusal in server_log(fed), 60, "the stolen certificate to be refused")
        fed.start(SITE_A)
        with Session.connect(fed.kits[PROJECT_ADMIN], timeout=15.0) as admin:

            def joined() -> bool:
                fed.check_alive()
                return [s.name for s in admin.sites_status().sites] == [SITE_A]

            wait_for(joined, 60, f"the renewed {SITE_A} to join")
        assert f"site {SITE_A} (org-a) connected" in server_log(fed)
    finally:
        fed.stop_all()
