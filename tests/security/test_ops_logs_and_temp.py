"""Item 9: refused TLS handshakes are lines in log.txt; jobs leave no temporary folders.

Real processes: a POC federation whose processes use a private TMPDIR (so the check of what
a job leaves there is exact), and TLS clients with a certificate from another CA or none.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Federation, make_federation, wait_for
from tests.e2e.jobs import arithmetic_job
from tests.unit.transport.certs_helper import make_ca, make_cert

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The TMPDIR of every process the test starts."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.fixture
def fed(tmp_path: Path, private_tmp: Path) -> Iterator[Federation]:
    """Server and two sites, started with the private TMPDIR."""
    federation = make_federation(tmp_path / "poc", 2)
    try:
        federation.start("server")
        for site in federation.layout.sites:
            federation.start(site)
        federation.wait_sites(list(federation.layout.sites))
        yield federation
    finally:
        federation.stop_all()


def _job_temp_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("fedra-"))


def test_jobs_leave_no_temporary_folders(
    fed: Federation, private_tmp: Path, tmp_path: Path
) -> None:
    for launch in ("in_process", "subprocess"):
        job = arithmetic_job(tmp_path / f"arith-{launch}", tmp_path / "marks", rounds=1)
        with fed.session() as session:
            job_id = session.submit_job(job)
            final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:COMPLETED", final
        # The job's processes are gone once the sites report it ended; poll the folder.
        wait_for(
            lambda: not _job_temp_folders(private_tmp),
            30,
            f"no fedra-* folder in TMPDIR after a {launch} job: {_job_temp_folders(private_tmp)}",
        )


def test_stopping_mid_job_leaves_no_temporary_folders(
    fed: Federation, private_tmp: Path, tmp_path: Path
) -> None:
    """A job that resumes later gets a new kit copy: the server and the sites remove theirs
    when they stop mid-job (SIGTERM), not only when the job ends."""
    marks = tmp_path / "gated"
    job = arithmetic_job(
        tmp_path / "gated-job",
        marks,
        rounds=2,
        launch="in_process",
        gate_round="1",
        gate_sites="site-1",
    )
    try:
        with fed.session() as session:
            session.submit_job(job)
        wait_for((marks / "site-1.waiting").exists, 90, "site-1 to wait at the gate")
        assert any(n.startswith("fedra-kit-") for n in _job_temp_folders(private_tmp))
        fed.stop_all()  # SIGTERM to each process group, as stop_fl.sh does
        assert _job_temp_folders(private_tmp) == []
    finally:
        marks.mkdir(parents=True, exist_ok=True)
        (marks / "gate").write_text("open")


def _tls_context(cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def _tls_client(port: int, context: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"\0")
                tls.recv(16)
        except (OSError, ssl.SSLError):
            pass  # refused: the point


def _tls_lines(fed: Federation) -> list[str]:
    return [line for line in fed.log("server").splitlines() if " fedra.tls: " in line]


def test_refused_tls_handshakes_are_logged_with_the_peer(
    federation: Federation, tmp_path: Path
) -> None:
    ca, ca_key = make_ca("another-project")
    intruder = make_cert(ca, ca_key, "site-1", "nowhere", "client")
    cert, key = tmp_path / "intruder.crt", tmp_path / "intruder.key"
    cert.write_bytes(intruder.cert)
    key.write_bytes(intruder.key)

    _tls_client(federation.fed_port, _tls_context((cert, key)))
    wait_for(
        lambda: any("CERTIFICATE_VERIFY_FAILED" in line for line in _tls_lines(federation)),
        30,
        "the refused certificate in the server's log.txt",
    )
    line = next(li for li in _tls_lines(federation) if "CERTIFICATE_VERIFY_FAILED" in li)
    assert "WARNING fedra.tls: refused a TLS connection from 127.0.0.1:" in line

    _tls_client(federation.admin_port, _tls_context(None))
    wait_for(
        lambda: any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in li for li in _tls_lines(federation)),
        30,
        "the missing certificate in the server's log.txt",
    )
    # The server goes on serving.
    with federation.session() as session:
        names = sorted(s.name for s in session.sites_status().sites)
    assert names == ["site-1", "site-2"]


def test_a_flood_of_refused_handshakes_does_not_flood_the_log(federation: Federation) -> None:
    context = _tls_context(None)
    for _ in range(200):
        _tls_client(federation.fed_port, context)
    wait_for(lambda: len(_tls_lines(federation)) >= 1, 30, "the first refusal in the log")
    with federation.session() as session:  # the server still serves; its log settled
        assert session.server_status().status == "started"
    lines = _tls_lines(federation)
    assert 1 <= len(lines) <= 6, lines
