"""A provisioned federation for real: kits from project.yml, admins with roles, signed kits.

One federation serves the whole module: ``server1`` (reached at 127.0.0.1 through the
``host`` override, TLS name still ``server1``), ``site-1`` (hospital-a) and ``site-2``
(hospital-b), and two admins of hospital-a: a ``lead`` and a ``member``. The server enforces
each admin command by role (the defaults of the kit's ``local/authorization.json.default``):
a lead submits jobs and manages its own, a member only views.

Every process runs in a session of its own and is ended by process group (SIGTERM, then
SIGKILL) when the module ends, also when a test fails. Nothing waits by sleeping: each wait
polls a condition against a deadline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedra.admin import AdminError
from fedra.provision import load_project, provision, verify_kit
from tests.e2e.conftest import free_port, read, wait_for
from tests.e2e.jobs import arithmetic_job
from tests.e2e.provisioned import (
    LEAD,
    MAIN_PARTICIPANTS,
    MEMBER,
    PROJECT,
    SERVER,
    SITE_MODULE,
    SITES,
    ProvisionedFederation,
    end_group,
    free_ports,
    provision_project,
    spawn,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """The module's federation: server1, site-1 and site-2 running and connected."""
    fed_port, admin_port = free_ports()
    root = tmp_path_factory.mktemp("provisioned")
    kits = provision_project(root, "e2e-project", fed_port, admin_port, MAIN_PARTICIPANTS)
    federation = ProvisionedFederation(kits, fed_port, admin_port)
    try:
        federation.start(SERVER)
        server_log = kits[SERVER] / "log.txt"

        def listening() -> bool:
            federation.check_alive()
            return "listening" in read(server_log)

        wait_for(listening, 60, "server1 to listen")
        for site in SITES:
            federation.start(site)
        federation.wait_sites()
        yield federation
    finally:
        federation.stop_all()


def test_the_lead_submits_a_job_that_completes(fed: ProvisionedFederation, tmp_path: Path) -> None:
    fed.wait_sites()
    job = arithmetic_job(tmp_path / "lead-job", tmp_path / "marks", rounds=2)
    with fed.session(LEAD) as lead:
        job_id = lead.submit_job(job)
        final = lead.wait(job_id, timeout=120)
    assert final.status == "FINISHED:COMPLETED", final
    assert final.submitter == LEAD
    with fed.session(MEMBER) as member:  # a member may view any job
        assert member.get_job(job_id).status == "FINISHED:COMPLETED"


def test_the_member_may_neither_submit_nor_abort_the_leads_job(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    fed.wait_sites()
    with fed.session(MEMBER) as member:
        before = [j.job_id for j in member.list_jobs()]
        with pytest.raises(AdminError, match="not allowed") as refused:
            member.submit_job(arithmetic_job(tmp_path / "member-job", tmp_path / "m0", rounds=1))
        assert "member" in str(refused.value) and "submit_job" in str(refused.value)
        assert [j.job_id for j in member.list_jobs()] == before

    marks = tmp_path / "marks"
    job = arithmetic_job(
        tmp_path / "gated",
        marks,
        rounds=2,
        gate_round="1",
        gate_sites="site-1",
        launch="in_process",
    )
    try:
        with fed.session(LEAD) as lead, fed.session(MEMBER) as member:
            job_id = lead.submit_job(job)
            wait_for((marks / "site-1.waiting").exists, 90, "site-1 to wait at the gate")
            assert lead.get_job(job_id).status == "RUNNING"
            with pytest.raises(AdminError, match="not allowed") as refused:
                member.abort_job(job_id)
            assert "member" in str(refused.value) and "abort_job" in str(refused.value)
            assert member.get_job(job_id).status == "RUNNING"
            assert lead.abort_job(job_id).status == "FINISHED:ABORTED"
            assert lead.get_job(job_id).status == "FINISHED:ABORTED"
    finally:
        marks.mkdir(parents=True, exist_ok=True)
        (marks / "gate").write_text("open")


def test_local_edits_are_fine_but_a_changed_startup_file_is_refused(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    fed.wait_sites()
    # local/ is the site's own to edit: site-2 restarts from its kit and reconnects.
    fed.stop("site-2")
    wait_for(lambda: fed.connected() == [("site-1", "hospital-a")], 60, "site-2 to be gone")
    local = fed.kits["site-2"] / "local"
    resources = json.loads((local / "resources.json.default").read_text())
    resources["num_gpus"] = 1
    (local / "resources.json").write_text(json.dumps(resources))
    verify_kit(fed.kits["site-2"])
    fed.start("site-2")
    fed.wait_sites()
    assert fed.connected() == [("site-1", "hospital-a"), ("site-2", "hospital-b")]

    # startup/ is signed: a copy of site-1's kit with fed_client.json changed is refused.
    copy = tmp_path / "site-1-copy"
    shutil.copytree(
        fed.kits["site-1"], copy, ignore=shutil.ignore_patterns("log.txt", "stderr.txt", "*.fl")
    )
    config = copy / "startup" / "fed_client.json"
    settings = json.loads(config.read_text())
    settings["server_host"] = "evil.example.org"
    config.write_text(json.dumps(settings))
    proc = spawn(copy, SITE_MODULE)
    try:
        code = proc.wait(60)
    finally:
        end_group(proc)
    stderr = read(copy / "stderr.txt")
    assert code == 9, stderr
    assert "startup/fed_client.json" in stderr
    assert not (copy / "log.txt").exists()  # refused before doing anything


def test_a_site_kit_of_another_project_never_connects(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    fed.wait_sites()
    # Another project (so another CA) with a site-1 of its own, aimed at our server's FL port.
    kits = provision_project(
        tmp_path / "other",
        "other-project",
        fed.fed_port,
        free_port(),
        "  - {name: site-1, type: client, org: hospital-x, enable_byoc: true}",
    )
    intruder = kits["site-1"]
    proc = spawn(intruder, SITE_MODULE)
    try:

        def refused() -> bool:
            assert proc.poll() is None, read(intruder / "stderr.txt") + read(intruder / "log.txt")
            return "cannot reach the server" in read(intruder / "log.txt")

        wait_for(refused, 60, "the intruder to be refused")
        assert "connected to the server" not in read(intruder / "log.txt")
        assert fed.connected() == [("site-1", "hospital-a"), ("site-2", "hospital-b")]
    finally:
        end_group(proc)
    fed.check_alive()


def test_a_site_missing_from_the_project_and_an_expired_kit_are_refused(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    import datetime as dt
    import shutil

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from fedra.pki import sign_kit
    from fedra.pki.certs import CertKey

    fed.wait_sites()
    server_kit = fed.kits[SERVER]
    project_root = server_kit.parents[3]  # <root>/workspace/e2e-project/prod_00/server1
    # prod_01 of the same project (same CA) adds site-3; the running server (prod_00) does not
    # list it, so its valid certificate is still refused.
    extra = MAIN_PARTICIPANTS + "\n  - {name: site-3, type: client, org: hospital-c}"
    (project_root / "project.yml").write_text(
        PROJECT.format(
            name="e2e-project", fed_port=fed.fed_port, admin_port=fed.admin_port, others=extra
        )
    )
    result = provision(
        load_project(project_root / "project.yml"),
        project_root / "workspace",
        python=sys.executable,
    )
    newcomer = result.kits["site-3"]
    assert "prod_01" in str(newcomer)
    proc = spawn(newcomer, SITE_MODULE)
    try:
        wait_for(
            lambda: "not a site of this project" in read(newcomer / "log.txt"),
            60,
            "site-3 to be refused",
        )
        assert "refused site site-3" in read(server_kit / "log.txt")
        assert [n for n, _ in fed.connected()] == ["site-1", "site-2"]
    finally:
        end_group(proc)

    # A copy of site-1's kit whose certificate has expired (re-signed by the project CA, so
    # only the date is wrong): the site refuses to start and says why.
    state = project_root / "workspace" / "e2e-project" / "state"
    ca = CertKey(
        cert_pem=(state / "rootCA.pem").read_bytes(),
        key_pem=next(p for p in state.iterdir() if p.suffix == ".key").read_bytes(),
    )
    expired_kit = tmp_path / "expired-site-1"
    shutil.copytree(
        fed.kits["site-1"],
        expired_kit,
        ignore=shutil.ignore_patterns("log.txt", "jobs", "*.fl", "stderr.txt"),
    )
    startup = expired_kit / "startup"
    old = x509.load_pem_x509_certificate((startup / "client.crt").read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    now = dt.datetime.now(dt.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca_cert.subject)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (startup / "client.crt").write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    sign_kit(expired_kit, ca)
    done = subprocess.run(
        [sys.executable, "-m", SITE_MODULE, "--kit", str(expired_kit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "expired" in done.stderr, done.stderr
