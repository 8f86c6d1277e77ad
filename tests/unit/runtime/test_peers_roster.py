"""More edges of the project's lists and of the one-connection-per-site rule: the lists read
from a kit file, fingerprints, participants that are not admins, claims of several sites."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedra.core import ConfigError, FedraError
from fedra.runtime.peers import (
    Roster,
    SessionClaims,
    SiteRefused,
    admit_admin,
    load_roster,
    revoked_entry,
    silent_for,
    take_site_slot,
)
from fedra.transport import PeerIdentity

FP = "0f" * 32


def test_the_lists_are_read_from_the_kits_startup_file(tmp_path: Path) -> None:
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "fed_client.json").write_text(
        '{"name": "site-a", "admins": [], "revoked": ["SHA256:' + FP.upper() + '", "site-b"]}'
    )
    roster = load_roster(tmp_path, "fed_client.json")
    assert roster.admins == {} and roster.revoked == {f"sha256:{FP}", "site-b"}


def test_a_missing_or_broken_kit_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fed_server\.json not found"):
        load_roster(tmp_path, "fed_server.json")
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "fed_server.json").write_text('{"revoked": [null]}')
    with pytest.raises(ConfigError, match=r"fed_server\.json: revoked: expected a list"):
        load_roster(tmp_path, "fed_server.json")


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("site-b", "site-b"),
        ("Site-B", "Site-B"),  # names are kept as written
        (f"sha256:{FP}", f"sha256:{FP}"),
        (f"Sha256:{FP.upper()}", f"sha256:{FP}"),
        ("sha256:" + "0g" * 32, None),  # not hex
        ("sha256:" + "0f" * 33, None),  # too long
        ("sha256:", None),
    ],
)
def test_revoked_entries_in_their_canonical_form(entry: str, canonical: str | None) -> None:
    assert revoked_entry(entry) == canonical


def test_a_name_and_a_fingerprint_are_not_confused() -> None:
    roster = Roster(revoked=frozenset({f"sha256:{FP}"}))
    assert roster.participant_refusal(f"sha256:{FP}", "site") == (
        f"site sha256:{FP} is revoked in this project"  # a name that spells a fingerprint
    )
    assert roster.participant_refusal("site-a", "site", "") is None  # no fingerprint known
    assert roster.participant_refusal("server1", "server", FP) is not None


def test_the_listed_admin_is_checked_on_org_as_well_as_role() -> None:
    roster = Roster.from_config(
        {"admins": [{"name": "l@a.org", "org": "org-a", "role": "lead"}]}, Path("f.json")
    )
    moved = roster.admin_refusal("l@a.org", "org-b", "lead")
    assert moved == (
        "the certificate of l@a.org says lead of org-b, the project says lead of org-a: "
        "use the kit of the latest provisioning"
    )


def test_the_last_listing_of_an_admin_counts() -> None:
    admins = [
        {"name": "l@a.org", "org": "org-a", "role": "member"},
        {"name": "l@a.org", "org": "org-a", "role": "lead"},
    ]
    roster = Roster.from_config({"admins": admins}, Path("f.json"))
    assert roster.admin_refusal("l@a.org", "org-a", "lead") is None


@pytest.mark.parametrize("role", ["client", "server", "overseer"])
def test_participants_on_the_admin_port_are_left_to_the_admin_service(role: str) -> None:
    roster = Roster(admins={}, revoked=frozenset({"site-a"}))
    admit_admin(roster, PeerIdentity("site-a", "org-a", role, FP))  # no refusal here


def test_a_revoked_admin_certificate_is_refused_by_fingerprint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    roster = Roster(revoked=frozenset({f"sha256:{FP}"}))
    with pytest.raises(FedraError, match=r"refused: the certificate of l@a\.org \(sha256:0f0f"):
        admit_admin(roster, PeerIdentity("l@a.org", "org-a", "lead", FP))
    assert "refused admin l@a.org on the admin port" in caplog.text
    admit_admin(roster, PeerIdentity("l@a.org", "org-a", "lead", "aa" * 32))  # a new cert


# -- one connection per site -----------------------------------------------------------------
@dataclass
class Conn:
    last_heard: float = 0.0
    closed: bool = False


@dataclass
class Handle:
    conn: Conn = field(default_factory=Conn)
    last_seen: float = 0.0


def test_silence_counts_from_the_latest_sign_of_life() -> None:
    assert silent_for(Handle(Conn(last_heard=90.0), last_seen=50.0), 100.0) == 10.0
    assert silent_for(Handle(Conn(last_heard=50.0), last_seen=95.0), 100.0) == 5.0


def test_the_timeout_is_inclusive_for_the_holder() -> None:
    live = Handle(Conn(last_heard=100.0))
    sites = {"site-a": live}
    with pytest.raises(SiteRefused, match="last heard 60 s ago"):
        take_site_slot(sites, "site-a", Handle(), timeout=60, now=160.0)
    newcomer = Handle()
    assert take_site_slot(sites, "site-a", newcomer, timeout=60, now=160.001) is live
    assert sites == {"site-a": newcomer}


def test_a_first_connection_takes_the_place_and_returns_nothing() -> None:
    sites: dict[str, Handle] = {"site-b": Handle()}
    first = Handle()
    assert take_site_slot(sites, "site-a", first, timeout=60, now=0.0) is None
    assert sites["site-a"] is first and "site-b" in sites


# -- claims of several sites -------------------------------------------------------------------
def test_claims_of_several_sites_each_get_a_line_but_one_question(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    now = [10.0]
    asked: list[str] = []
    claims = SessionClaims(asked.append, interval=3.0, clock=lambda: now[0])
    assert claims.claim("site-a", 9, 1, "heartbeat")
    assert not claims.claim("site-b", 9, 1, "heartbeat")
    assert asked == ["site site-a claims service session 9"]
    assert "site site-a claims" in caplog.text and "site site-b claims" in caplog.text
    now[0] += 3.0  # exactly the interval: a new question may be asked
    assert claims.claim("site-b", 9, None, "hello")
    assert "(this server: None) in a hello message" in caplog.text
