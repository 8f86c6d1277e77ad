"""Revocation and the project's admins in provisioning: project.yml, state/ and every kit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from fedra.overseer import OverseerKit
from fedra.provision import (
    KitTampered,
    ProjectError,
    load_project,
    parse_project,
    provision,
    verify_kit,
)
from fedra.runtime import ServerKit, SiteKit
from fedra.runtime.peers import ListedAdmin

OVERSEER = "  - {name: overseer.acme.org, type: overseer, org: acme}\n"


def write(folder: Path, text: str) -> Path:
    path = folder / "project.yml"
    path.write_text(text)
    return path


def without(text: str, name: str) -> str:
    """The project text without the participant ``name`` (its mapping spans 4 lines)."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"  - name: {name}\n")
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return "".join(lines[:start] + lines[end:])


def test_revoked_is_a_list_of_names(project_text: str) -> None:
    project = parse_project(project_text + "revoked: [old-site, former@acme.org, old-site]\n")
    assert project.revoked == ("old-site", "former@acme.org")
    assert parse_project(project_text).revoked == ()
    with pytest.raises(ProjectError, match=r"revoked: expected a list of participant names"):
        parse_project(project_text + "revoked: old-site\n")


def test_a_participant_cannot_be_revoked(project_text: str) -> None:
    with pytest.raises(ProjectError, match=r"participants\[2\]\.name: 'site-2' is revoked"):
        parse_project(project_text + "revoked: [site-2]\n")


def test_every_kit_lists_admins_and_revoked_in_its_signed_part(
    tmp_path: Path, project_text: str
) -> None:
    text = project_text.replace("participants:\n", "participants:\n" + OVERSEER, 1)
    result = provision(load_project(write(tmp_path, text + "revoked: [old-site]\n")), tmp_path)
    kits = result.kits
    admins = {
        "admin@acme.org": ListedAdmin("admin@acme.org", "acme", "project_admin"),
        "member@other.org": ListedAdmin("member@other.org", "other", "member"),
    }
    for kit in (ServerKit.load(kits["server1"]), SiteKit.load(kits["site-1"])):
        assert kit.roster.admins == admins
        assert kit.roster.revoked == {"old-site"}
    overseer = OverseerKit.load(kits["overseer.acme.org"])
    assert overseer.revoked == {"old-site"}
    assert overseer.admins == {(a.name, a.org, a.role) for a in admins.values()}
    for kit in kits.values():
        verify_kit(kit)  # the lists are in startup/, under the signature
    config = kits["site-1"] / "startup" / "fed_client.json"
    config.write_text(config.read_text().replace('"old-site"', '"x"'))
    with pytest.raises(KitTampered, match="changed since the kit was signed"):
        verify_kit(kits["site-1"])


def test_revoked_names_are_remembered_across_provisionings(
    tmp_path: Path, project_text: str
) -> None:
    provision(load_project(write(tmp_path, project_text + "revoked: [old-site]\n")), tmp_path)
    state = tmp_path / "demo" / "state" / "revoked.json"
    assert json.loads(state.read_text()) == {"revoked": ["old-site"]}
    # A later project.yml that forgets the revocation does not let it back in.
    second = provision(load_project(write(tmp_path, project_text)), tmp_path)
    assert ServerKit.load(second.kits["server1"]).roster.revoked == {"old-site"}
    assert second.project.revoked == ("old-site",)
    # Nor can a participant come back under a revoked name.
    back = project_text + "  - {name: old-site, type: client, org: acme}\n"
    with pytest.raises(ProjectError, match=r"'old-site' is revoked .*state/revoked.json"):
        provision(load_project(write(tmp_path, back)), tmp_path)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "prod_00",
        "prod_01",
        "state",
    ]


def test_a_removed_admin_is_no_longer_listed(tmp_path: Path, project_text: str) -> None:
    provision(load_project(write(tmp_path, project_text)), tmp_path)
    second = provision(
        load_project(write(tmp_path, without(project_text, "member@other.org"))), tmp_path
    )
    roster = ServerKit.load(second.kits["server1"]).roster
    assert roster.admin_refusal("member@other.org", "other", "member") == (
        "member@other.org (member, other) is not an admin of this project"
    )
    assert roster.admin_refusal("admin@acme.org", "acme", "project_admin") is None


def test_a_certificate_is_revoked_by_fingerprint_and_its_name_may_stay(
    tmp_path: Path, project_text: str
) -> None:
    def fingerprint(kit: Path) -> bytes:
        pem = (kit / "startup" / "client.crt").read_bytes()
        return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256())

    first = provision(load_project(write(tmp_path, project_text)), tmp_path)
    raw = fingerprint(first.kits["site-1"])
    openssl = "SHA256:" + ":".join(f"{b:02X}" for b in raw)  # as `openssl x509 -fingerprint`
    text = project_text + f'revoked: ["{openssl}"]\n'
    second = provision(load_project(write(tmp_path, text)), tmp_path)
    roster = SiteKit.load(second.kits["site-2"]).roster
    assert roster.revoked == {f"sha256:{raw.hex()}"}
    assert roster.participant_refusal("site-1", "site", raw.hex()) is not None
    renewed = fingerprint(second.kits["site-1"])  # site-1 stays, with a new certificate
    assert renewed != raw and roster.participant_refusal("site-1", "site", renewed.hex()) is None
    with pytest.raises(ProjectError, match="sha256:<64 hex>"):
        parse_project(project_text + "revoked: [sha256:1234]\n")
