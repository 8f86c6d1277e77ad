"""The pure rules of fedra.runtime.peers: the project's lists, one connection per site, claims."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedra.core import ConfigError, FedraError
from fedra.runtime.config import ServerKit, SiteKit
from fedra.runtime.peers import (
    ListedAdmin,
    Roster,
    SessionClaims,
    SiteRefused,
    admit_admin,
    admit_site,
    revoked_entry,
    take_site_slot,
)
from fedra.transport import PeerIdentity

HERE = Path("fed_server.json")
LEAD = ListedAdmin("lead@a.org", "org-a", "lead")


def roster(**data: object) -> Roster:
    return Roster.from_config(data, HERE)


# -- the project's lists ------------------------------------------------------------------
def test_a_kit_without_lists_admits_every_admin_of_the_ca() -> None:
    old = roster()
    assert old.admins is None and old.revoked == frozenset()
    assert old.admin_refusal("anyone@x.org", "x", "project_admin") is None
    assert old.participant_refusal("site-z", "site") is None


def test_only_listed_admins_with_their_role_and_org_are_admitted() -> None:
    lists = roster(admins=[{"name": LEAD.name, "org": LEAD.org, "role": LEAD.role}])
    assert lists.admin_refusal(LEAD.name, LEAD.org, LEAD.role) is None
    gone = lists.admin_refusal("old@a.org", "org-a", "lead")
    assert gone == "old@a.org (lead, org-a) is not an admin of this project"
    demoted = lists.admin_refusal(LEAD.name, LEAD.org, "project_admin")
    assert demoted is not None and "the project says lead of org-a" in demoted


def test_revoked_names_are_refused_whatever_the_lists_say() -> None:
    lists = roster(admins=[], revoked=["site-b", "old@a.org"])
    assert lists.participant_refusal("site-b", "site") == "site site-b is revoked in this project"
    assert lists.participant_refusal("site-a", "site") is None
    assert "revoked" in str(lists.admin_refusal("old@a.org", "org-a", "lead"))


def test_a_certificate_is_revoked_by_its_fingerprint_in_any_usual_spelling() -> None:
    openssl = "SHA256:" + ":".join(FINGERPRINT[i : i + 2].upper() for i in range(0, 64, 2))
    assert revoked_entry(openssl) == f"sha256:{FINGERPRINT}"
    assert revoked_entry("site-b") == "site-b"
    assert revoked_entry("sha256:abc") is None
    lists = roster(revoked=[openssl], admins=[])
    assert lists.participant_refusal("site-a", "site", "cd" * 32) is None  # its new certificate
    why = lists.participant_refusal("site-a", "site", FINGERPRINT)
    assert (
        why == f"the certificate of site-a (sha256:{FINGERPRINT[:16]}…) is revoked in this project"
    )
    assert "is revoked" in str(lists.admin_refusal("lead@a.org", "org-a", "lead", FINGERPRINT))


@pytest.mark.parametrize(
    "data",
    [
        {"admins": "lead@a.org"},
        {"admins": [{"name": "x"}]},
        {"admins": [["x", "o", "lead"]]},
        {"revoked": "site-b"},
        {"revoked": [1]},
        {"revoked": ["sha256:not-hex"]},
    ],
)
def test_malformed_lists_are_a_config_error(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"fed_server\.json: (admins|revoked)"):
        Roster.from_config(data, HERE)


def test_server_and_site_kits_read_the_lists(tmp_path: Path) -> None:
    startup = tmp_path / "startup"
    startup.mkdir()
    lists = '"admins": [{"name": "lead@a.org", "org": "org-a", "role": "lead"}], "revoked": ["x"]'
    (startup / "fed_server.json").write_text(f'{{"name": "server1", {lists}}}')
    (startup / "fed_client.json").write_text(f'{{"name": "site-a", "server_host": "h", {lists}}}')
    for kit in (ServerKit.load(tmp_path), SiteKit.load(tmp_path)):
        assert kit.roster.revoked == {"x"}
        assert kit.roster.admins == {LEAD.name: LEAD}


def test_admit_admin_refuses_with_the_reason_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lists = roster(admins=[], revoked=[])
    with pytest.raises(FedraError, match=r"refused: old@a.org \(lead, org-a\) is not an admin"):
        admit_admin(lists, PeerIdentity("old@a.org", "org-a", "lead"))
    assert "refused admin old@a.org on the admin port" in caplog.text
    admit_admin(lists, PeerIdentity("site-a", "org-a", "client"))  # not an admin: passes here


# -- one live connection per site ----------------------------------------------------------
FINGERPRINT = "ab" * 32


@dataclass
class FakeConn:
    last_heard: float = 0.0
    closed: bool = False
    peer: PeerIdentity = field(
        default_factory=lambda: PeerIdentity("site-a", "org-a", "client", FINGERPRINT)
    )

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeHandle:
    name: str
    conn: FakeConn = field(default_factory=FakeConn)
    org: str = "org-a"
    last_seen: float = 0.0


def test_the_live_connection_keeps_its_place() -> None:
    live = FakeHandle("site-a", FakeConn(last_heard=100.0), last_seen=95.0)
    sites = {"site-a": live}
    with pytest.raises(SiteRefused, match="site-a is already connected"):
        take_site_slot(sites, "site-a", FakeHandle("site-a"), timeout=60, now=150.0)
    assert sites["site-a"] is live and not live.conn.closed


def test_a_silent_or_closed_connection_gives_way() -> None:
    silent = FakeHandle("site-a", FakeConn(last_heard=100.0), last_seen=100.0)
    sites = {"site-a": silent}
    newcomer = FakeHandle("site-a")
    assert take_site_slot(sites, "site-a", newcomer, timeout=60, now=161.0) is silent
    assert sites["site-a"] is newcomer
    closed = FakeHandle("site-b", FakeConn(last_heard=100.0, closed=True))
    sites["site-b"] = closed
    assert take_site_slot(sites, "site-b", FakeHandle("site-b"), timeout=60, now=100.0) is closed


@dataclass
class FakeKit:
    roster: Roster = field(default_factory=Roster)
    heartbeat_timeout: float = 60.0
    sites: tuple[str, ...] | None = ("site-a", "site-b")


def test_admit_site_checks_revocation_the_project_list_and_the_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sites: dict[str, object] = {}
    lock = threading.Lock()
    kit = FakeKit(roster=roster(revoked=["site-b"]))
    with pytest.raises(FedraError, match="refused: site site-b is revoked in this project"):
        admit_site(sites, lock, FakeHandle("site-b"), kit)
    with pytest.raises(FedraError, match="refused: site-c is not a site of this project"):
        admit_site(sites, lock, FakeHandle("site-c"), kit)
    assert sites == {}
    caplog.set_level(logging.WARNING)
    old = FakeHandle("site-a", FakeConn(closed=False), last_seen=-1000.0)
    sites["site-a"] = old
    admit_site(sites, lock, FakeHandle("site-a"), kit)  # the old one is long silent
    assert old.conn.closed
    assert "site site-a connected again: its silent connection is closed" in caplog.text
    assert "refused site site-b (org-a) on the FL port: site site-b is revoked" in caplog.text
    stolen = FakeKit(roster=roster(revoked=[f"sha256:{FINGERPRINT}"]))
    with pytest.raises(FedraError, match=r"refused: the certificate of site-a \(sha256:abab"):
        admit_site({}, lock, FakeHandle("site-a"), stolen)


# -- claims of a newer session ---------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claims_ask_the_overseer_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    asked: list[str] = []
    clock = Clock()
    claims = SessionClaims(asked.append, interval=3.0, clock=clock)
    assert claims.claim("site-3", 10**9, 1, "session")
    for _ in range(500):  # a flood within the interval: no more questions, no more lines
        clock.now += 0.001
        assert not claims.claim("site-3", 10**9, 1, "session")
    assert asked == ["site site-3 claims service session 1000000000"]
    assert caplog.text.count("claims the newer service session") == 1
    clock.now += 3.0
    assert claims.claim("site-3", 10**9, 1, "hello")
    assert len(asked) == 2
    assert "(500 more claims left out)" in caplog.text
    assert "site site-3 claims the newer service session 1000000000 (this server: 1)" in (
        caplog.text
    )
