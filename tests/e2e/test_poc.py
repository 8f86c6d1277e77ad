"""The POC journey for real: server and sites as processes over gRPC with mutual TLS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from fedra.serverapp import load_npz
from tests.e2e.conftest import Federation, make_federation, pid_alive, wait_for
from tests.e2e.jobs import arithmetic_job, expected_weights

pytestmark = pytest.mark.timeout(240)


def test_submit_wait_download_through_the_session(federation: Federation, tmp_path: Path) -> None:
    job = arithmetic_job(tmp_path / "arith", tmp_path / "marks", rounds=3)
    with federation.session() as session:
        job_id = session.submit_job(job)
        listed = {j.job_id: j for j in session.list_jobs()}
        assert job_id in listed
        final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:COMPLETED", final
        statuses = [h.status for h in final.history or []]
        assert statuses == ["SUBMITTED", "DISPATCHED", "RUNNING", "FINISHED:COMPLETED"]
        stats = session.show_stats(job_id)
        assert [r["round"] for r in stats.rounds if r["workflow"] == "FedAvg"] == [1, 2, 3]
        out = session.download_job(job_id, tmp_path / "download")
        weights = load_npz(out / "models" / "final.npz")["w"]
        np.testing.assert_allclose(weights, expected_weights(2, 3))
        assert (out / "tb_events").is_dir()
        assert "FINISHED:COMPLETED" in session.tail("server", 50)
        info = session.sys_info("site-1")
        assert info.name == "site-1"


@pytest.mark.slow
def test_hello_pt_trains_to_the_bar(federation: Federation, tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    with federation.session() as session:
        job_id = session.submit_job(examples / "hello-pt")
        final = session.wait(job_id, timeout=200)
        assert final.status == "FINISHED:COMPLETED", final
        last = (final.run_info or {})["rounds"][-1]
        assert last["metrics"]["accuracy"] >= 0.90
        out = session.download_job(job_id, tmp_path / "dl")
        assert list((out / "tb_events" / "site-1").glob("events.out.tfevents.*"))


def test_abort_ends_a_script_that_ignores_sigterm(federation: Federation, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    job = arithmetic_job(
        tmp_path / "stubborn",
        marks,
        rounds=3,
        launch="subprocess",
        ignore_sigterm="1",
        gate_round="1",
        gate_sites="site-1,site-2",
    )
    with federation.session() as session:
        job_id = session.submit_job(job)
        wait_for(
            lambda: (marks / "site-1.waiting").exists() and (marks / "site-2.waiting").exists(),
            90,
            "both scripts to be training",
        )
        pids = [int((marks / f"{s}.pid").read_text()) for s in ("site-1", "site-2")]
        assert all(pid_alive(p) for p in pids)
        assert session.abort_job(job_id).status == "FINISHED:ABORTED"
        wait_for(lambda: not any(pid_alive(p) for p in pids), 30, "the scripts to be gone")
        record = session.get_job(job_id)
        assert record.status == "FINISHED:ABORTED"
        assert (record.history or [])[-1].reason.startswith("aborted by admin@")
        # Nothing restarts an aborted job: still aborted after the scheduler ran again.
        session.submit_job(arithmetic_job(tmp_path / "after", tmp_path / "m2", rounds=1))
        assert session.get_job(job_id).status == "FINISHED:ABORTED"


def test_server_killed_mid_job_resumes_to_the_same_model(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "poc", 2)
    marks = tmp_path / "marks"
    job = arithmetic_job(
        tmp_path / "resume",
        marks,
        rounds=5,
        launch="in_process",
        gate_round="3",
        gate_sites="site-1,site-2",
    )
    try:
        fed.start("server")
        for site in fed.layout.sites:
            fed.start(site)
        fed.wait_sites(["site-1", "site-2"])
        with fed.session() as session:
            job_id = session.submit_job(job)
            wait_for((marks / "site-1.waiting").exists, 90, "round 3 to start")
            done_rounds = [r["round"] for r in (session.get_job(job_id).run_info or {})["rounds"]]
            assert done_rounds == [1, 2]
        fed.kill("server")  # kill -9, mid-round
        (marks / "gate").write_text("open")
        fed.start("server")
        fed.wait_sites(["site-1", "site-2"], timeout=90)
        with fed.session() as session:
            final = session.wait(job_id, timeout=120)
            assert final.status == "FINISHED:COMPLETED", final
            # The record survives the restart: every round once, not only those after it.
            listed = [(r["workflow"], r["round"]) for r in session.show_stats(job_id).rounds]
            assert listed == [("FedAvg", n) for n in range(1, 6)] + [
                ("FedAvg (final validation)", 5)
            ]
            out = session.download_job(job_id, tmp_path / "dl")
        np.testing.assert_allclose(
            load_npz(out / "models" / "final.npz")["w"], expected_weights(2, 5)
        )
        assert "resume" in fed.log("server")
    finally:
        fed.stop_all()


def test_site_killed_mid_round_round_completes_and_site_rejoins(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "poc", 3)
    marks = tmp_path / "marks"
    job = arithmetic_job(
        tmp_path / "lossy",
        marks,
        rounds=3,
        min_clients=2,
        launch="in_process",
        wait_after_min=60.0,
        gate_round="2",
        gate_sites="site-3",
    )
    try:
        fed.start("server")
        for site in fed.layout.sites:
            fed.start(site)
        fed.wait_sites(["site-1", "site-2", "site-3"])
        with fed.session() as session:
            job_id = session.submit_job(job)
            wait_for((marks / "site-3.waiting").exists, 90, "site-3 in round 2")
            fed.kill("site-3")
            wait_for(
                lambda: len((session.get_job(job_id).run_info or {}).get("rounds") or []) >= 2,
                60,
                "round 2 to complete without site-3",
            )
            fed.start("site-3")
            fed.wait_sites(["site-1", "site-2", "site-3"], timeout=90)
            (marks / "gate").write_text("open")
            final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:COMPLETED", final
        assert "site site-3 disconnected" in fed.log("server")
    finally:
        fed.stop_all()


def test_a_site_from_another_ca_is_refused_and_logged(
    federation: Federation, tmp_path: Path
) -> None:
    # Another project's CA, pointed at our server's FL port (kits are signed: not edited).
    from fedra.poc import prepare
    from tests.e2e.conftest import free_port

    layout = prepare(tmp_path / "other", 1, fed_port=federation.fed_port, admin_port=free_port())
    other = Federation(layout, federation.fed_port, 0)
    try:
        other.start("site-1")
        wait_for(
            lambda: "cannot reach the server" in other.log("site-1"),
            60,
            "the intruder to be refused",
        )
        wait_for(
            lambda: (
                "fedra.tls: refused a TLS connection from 127.0.0.1:" in federation.log("server")
            ),
            30,
            "the refusal in the server's log.txt",
        )
        with federation.session() as session:
            names = [s.name for s in session.sites_status().sites]
        assert "site-1" in names and len(names) == 2
    finally:
        other.stop_all()


def _admin_cli(fed: Federation, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedra.cli", *args, "--kit", str(fed.layout.admin)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, COLUMNS="200"),
    )


def test_admin_errors_are_clear_one_liners(federation: Federation, tmp_path: Path) -> None:
    done = _admin_cli(federation, "job", "status", "no-such-job")
    assert done.returncode != 0
    assert "no-such-job" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2
    bad = tmp_path / "bad"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "hello-numpy", bad)
    (bad / "meta.json").write_text(
        '{"name": "bad", "deploy_map": {"app": ["@ALL"]}, "min_clients": 0}'
    )
    done = _admin_cli(federation, "job", "submit", str(bad))
    assert done.returncode == 2
    assert "meta.json: min_clients" in done.stderr
    done = _admin_cli(federation, "job", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    console = subprocess.run(
        [sys.executable, "-m", "fedra.cli", "admin", "--kit", str(federation.layout.admin)],
        input="frobnicate\ncheck_status client\nbye\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "unknown command 'frobnicate'" in console.stdout + console.stderr
    assert "site-2" in console.stdout


CONSOLE_DRIVER = """
import sys
import pexpect

script, job = sys.argv[1], sys.argv[2]
child = pexpect.spawn(script, encoding="utf-8", timeout=30, dimensions=(40, 200))
child.expect("Connected to server")
child.expect("> ")
child.sendline("check_status client")
child.expect("site-1")
child.expect("> ")
child.sendline("? submit_job")
child.expect("submit_job")
child.expect("> ")
child.sendline("submit_job " + job)
child.expect(r"[0-9a-f]{8}-[0-9a-f]{4}")
child.expect("> ")
child.sendline("bye")
child.expect(pexpect.EOF)
child.close()
print("console ok", child.exitstatus)
"""


@pytest.mark.slow
def test_console_in_a_terminal(federation: Federation, tmp_path: Path) -> None:
    pytest.importorskip("pexpect")
    # pexpect forks; this test process has gRPC threads, so the driver runs in a fresh one.
    job = arithmetic_job(tmp_path / "console-job", tmp_path / "marks", rounds=1)
    script = federation.layout.admin / "startup" / "fl_admin.sh"
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE_DRIVER, str(script), str(job)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "console ok 0" in done.stdout
    with federation.session() as session:
        assert [j.name for j in session.list_jobs()] == ["console-job"]


def test_a_crashing_site_job_process_fails_the_job_with_its_cause(
    federation: Federation, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    job = arithmetic_job(
        tmp_path / "crash",
        marks,
        rounds=3,
        launch="in_process",
        crash_round="2",
        crash_site="site-2",
    )
    with federation.session() as session:
        job_id = session.submit_job(job)
        final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:EXECUTION_EXCEPTION", final
        failure = final.failure
        assert failure is not None
        assert failure["site"] == "site-2"
        assert "exited with code 3" in failure["traceback"]
        errors = session.show_errors(job_id)
        assert (errors.failure or {})["site"] == "site-2"
        # The federation is unharmed: the next job runs to the end.
        again = session.submit_job(arithmetic_job(tmp_path / "next", tmp_path / "m2", rounds=1))
        assert session.wait(again, timeout=120).status == "FINISHED:COMPLETED"
        clone = session.clone_job(again)
        assert session.wait(clone, timeout=120).status == "FINISHED:COMPLETED"
        session.delete_job(clone)
        assert clone not in [j.job_id for j in session.list_jobs()]


@pytest.mark.parametrize("participant", ["server", "site-1", "admin"])
def test_a_changed_kit_is_refused_naming_the_file(tmp_path: Path, participant: str) -> None:
    fed = make_federation(tmp_path / "poc", 1)
    folder = fed.layout.root / participant
    config = next((folder / "startup").glob("fed_*.json"))
    config.write_text(config.read_text().replace("localhost", "evil.example.org"))
    if participant == "admin":
        from fedra.admin import Session
        from fedra.pki import KitTampered

        with pytest.raises(KitTampered, match=config.name):
            Session.connect(folder, timeout=5)
        return
    module = (
        "fedra.runtime.server_parent" if participant == "server" else "fedra.runtime.site_parent"
    )
    done = subprocess.run(
        [sys.executable, "-m", module, "--kit", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 9, done.stderr
    assert f"startup/{config.name}" in done.stderr
    assert "changed since the kit was signed" in done.stderr
    assert not (folder / "log.txt").exists()  # refused before doing anything


def test_site_policy_refuses_jobs_and_custom_code(federation: Federation, tmp_path: Path) -> None:
    policy = {"roles": {"project_admin": {"submit_job": "any", "byoc": "none"}}}
    local = federation.layout.site("site-2") / "local"
    local.mkdir(exist_ok=True)
    (local / "authorization.json").write_text(json.dumps(policy))
    with federation.session() as session:
        job_id = session.submit_job(arithmetic_job(tmp_path / "byoc", tmp_path / "marks"))
        final = session.wait(job_id, timeout=120)
    assert final.status == "FINISHED:EXECUTION_EXCEPTION"
    assert (final.failure or {})["site"] == "site-2"
    assert "may not run custom code on this site" in (final.failure or {})["traceback"]
    assert "local/authorization.json: byoc" in (final.failure or {})["traceback"]
    policy["roles"]["project_admin"] = {"submit_job": "none", "byoc": "any"}
    (local / "authorization.json").write_text(json.dumps(policy))
    with federation.session() as session:
        job_id = session.submit_job(arithmetic_job(tmp_path / "nosubmit", tmp_path / "m2"))
        final = session.wait(job_id, timeout=120)
    assert "may not submit jobs to this site" in (final.failure or {})["traceback"]


def test_unsigned_or_wrongly_signed_jobs_are_refused(
    federation: Federation, tmp_path: Path
) -> None:
    from fedra.admin import AdminError
    from fedra.job import zip_job
    from fedra.pki import sign_job

    archive = zip_job(arithmetic_job(tmp_path / "raw", tmp_path / "marks"))
    site_startup = federation.layout.site("site-1") / "startup"
    with federation.session() as session:
        with pytest.raises(AdminError, match="the job is not signed"):
            session._call("submit_job", {}, zip=archive)
        forged = {
            "signature": sign_job(archive, (site_startup / "client.key").read_bytes()),
            "certificate": (site_startup / "client.crt").read_text(),
        }
        with pytest.raises(AdminError, match="signed by admins"):
            session._call("submit_job", forged, zip=archive)
        admin_startup = federation.layout.admin / "startup"
        tampered = {
            "signature": sign_job(archive, (admin_startup / "client.key").read_bytes()),
            "certificate": (admin_startup / "client.crt").read_text(),
        }
        with pytest.raises(AdminError, match="does not match the signature"):
            session._call("submit_job", tampered, zip=archive + b"\0")
        assert session.list_jobs() == []


def test_a_job_altered_in_the_server_store_is_refused(
    federation: Federation, tmp_path: Path
) -> None:
    """The server verifies the stored signature before it runs the job's code (its BYOC
    check), so the altered job never reaches the sites (which would refuse it too)."""
    import zipfile

    federation.kill("site-2")  # the job (min_clients 2) waits in the store
    federation.wait_sites(["site-1"])
    with federation.session() as session:
        job_id = session.submit_job(arithmetic_job(tmp_path / "victim", tmp_path / "marks"))
        wait_for(
            lambda: "waiting" in str(session.get_job(job_id).waiting),
            30,
            "the job to wait for sites",
        )
        stored = next(federation.layout.server.glob(f"store/jobs/{job_id}/job.zip"))
        altered = tmp_path / "altered.zip"
        with zipfile.ZipFile(stored) as src, zipfile.ZipFile(altered, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename.endswith("train.py"):
                    data += b"\nimport os  # a line someone slipped in\n"
                dst.writestr(item, data)
        stored.write_bytes(altered.read_bytes())
        federation.start("site-2")
        final = session.wait(job_id, timeout=120)
    assert final.status == "FAILED_TO_RUN", final
    assert "signature is not valid" in json.dumps(msgspec.to_builtins(final))
    assert f"server refuses job {job_id}" in federation.log("server")
    assert "refuses job" not in federation.log("site-1")


def test_a_sites_mandatory_privacy_policy_wraps_every_job(
    federation: Federation, tmp_path: Path
) -> None:
    # site-2's own policy strips the weights from whatever it sends: the server can no longer
    # average, and the job says which site's results differ.
    policy = {"task_result_filters": [{"class": "ExcludeVars", "args": {"names": ["w"]}}]}
    local = federation.layout.site("site-2") / "local"
    local.mkdir(exist_ok=True)
    (local / "privacy.json").write_text(json.dumps(policy))
    with federation.session() as session:
        job_id = session.submit_job(arithmetic_job(tmp_path / "strip", tmp_path / "marks"))
        final = session.wait(job_id, timeout=120)
    assert final.status == "FINISHED:EXECUTION_EXCEPTION", final
    assert "params" in (final.history or [])[-1].reason
