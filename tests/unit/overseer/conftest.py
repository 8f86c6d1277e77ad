"""Fixtures of the overseer tests: a fake clock, a project CA and the TLS files of everyone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fedra.overseer import OverseerSettings, ServerHeartbeat, ServerState
from fedra.pki import CertKey, Identity, TlsFiles, create_ca, write_participant

#: Short real-time settings for the HTTPS tests: a silent hot server is replaced after 0.4 s.
FAST = OverseerSettings(heartbeat_interval=0.05, heartbeat_timeout=0.3, lease=0.3, lease_margin=0.1)


class FakeClock:
    """A monotonic clock the test moves by hand; ``wall`` is the matching wall clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at t = 1000 s."""
    return FakeClock()


def beat(
    name: str, state: ServerState = ServerState.READY, *, port: int = 8002, ssid: int | None = None
) -> ServerHeartbeat:
    """A heartbeat of server ``name`` on host ``name`` (ports ``port``, ``port + 1``)."""
    return ServerHeartbeat(name, name, port, port + 1, state, ssid)


@dataclass(frozen=True)
class Pki:
    """TLS files of the overseer and of every kind of caller, in one tmp folder."""

    ca: CertKey
    overseer: TlsFiles
    overseer_elsewhere: TlsFiles
    server1: TlsFiles
    server2: TlsFiles
    rogue_server: TlsFiles
    site: TlsFiles
    admin: TlsFiles
    lead: TlsFiles
    stranger: TlsFiles
    stranger_ca: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A project CA with an overseer, two servers, a site, two admins; a stranger's CA."""
    root = tmp_path_factory.mktemp("pki")
    ca = create_ca("ha-project")
    other = create_ca("another-project")

    local = ("127.0.0.1", "localhost")

    def files(
        folder: str, identity: Identity, issuer: CertKey = ca, hosts: tuple[str, ...] = ()
    ) -> TlsFiles:
        return write_participant(root / folder, issuer, identity, file_stem="p", hosts=hosts)

    stranger = files("stranger", Identity("admin@acme.org", "acme", "project_admin"), other)
    return Pki(
        ca=ca,
        overseer=files("overseer", Identity("overseer", "acme", "overseer"), hosts=local),
        overseer_elsewhere=files(
            "elsewhere", Identity("overseer", "acme", "overseer"), hosts=("ovs.example.org",)
        ),
        server1=files("server1", Identity("server1", "acme", "server"), hosts=local),
        server2=files("server2", Identity("server2", "acme", "server"), hosts=local),
        rogue_server=files("rogue", Identity("rogue", "acme", "server")),
        site=files("site", Identity("site-1", "hospital", "client")),
        admin=files("admin", Identity("admin@acme.org", "acme", "project_admin")),
        lead=files("lead", Identity("lead@acme.org", "acme", "lead")),
        # Trusts the project's CA, but its own certificate comes from another CA.
        stranger=TlsFiles(
            ca=root / "overseer" / "rootCA.pem", cert=stranger.cert, key=stranger.key
        ),
        stranger_ca=stranger.ca,
    )
