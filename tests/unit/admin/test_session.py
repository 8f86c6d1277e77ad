"""Session: request envelopes follow the admin protocol, replies and refusals are parsed."""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from admin_fakes import FakeConnection, FakeServer, result_zip

from fedra.admin import (
    AbortResult,
    AdminError,
    AdminKit,
    JobInfo,
    ServerStatus,
    Session,
    SitesStatus,
    SysInfo,
    UsageError,
    WaitTimeout,
)
from fedra.core import ConfigError, FedraError, JobStatus, JobValidationError, WireError
from fedra.wire import Envelope

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def last(server: FakeServer) -> Envelope:
    return server.requests[-1]


@pytest.mark.parametrize(
    ("call", "cmd", "args"),
    [
        (lambda s: s.check_status("client"), "check_status", {"target": "client"}),
        (lambda s: s.list_jobs(), "list_jobs", {"detailed": False, "prefix": None}),
        (lambda s: s.list_jobs(True, "d4"), "list_jobs", {"detailed": True, "prefix": "d4"}),
        (lambda s: s.get_job("a1b2c3"), "get_job", {"job_id": "a1b2c3"}),
        (lambda s: s.abort_job("d4e5f6"), "abort_job", {"job_id": "d4e5f6"}),
        (lambda s: s.clone_job("a1b2c3"), "clone_job", {"job_id": "a1b2c3"}),
        (lambda s: s.delete_job("a1b2c3"), "delete_job", {"job_id": "a1b2c3"}),
        (lambda s: s.show_stats("a1b2c3"), "show_stats", {"job_id": "a1b2c3"}),
        (lambda s: s.show_errors("a1b2c3"), "show_errors", {"job_id": "a1b2c3"}),
        (lambda s: s.tail("site-1", 3), "tail", {"participant": "site-1", "lines": 3}),
        (lambda s: s.cat("server", "log.txt"), "cat", {"participant": "server", "file": "log.txt"}),
        (lambda s: s.sys_info("site-2"), "sys_info", {"target": "site-2"}),
        (lambda s: s.remove_client("site-2"), "remove_client", {"name": "site-2"}),
        (
            lambda s: s.shutdown("client", ["site-1"]),
            "shutdown",
            {"target": "client", "names": ["site-1"]},
        ),
        (lambda s: s.restart("all"), "restart", {"target": "all", "names": None}),
    ],
)
def test_requests_follow_the_protocol(
    session: Session, server: FakeServer, call: Any, cmd: str, args: dict[str, Any]
) -> None:
    call(session)
    request = last(server)
    assert request.kind == "admin"
    assert set(request.headers) == {"id", "cmd", "args"}
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["id"])
    assert request.headers["cmd"] == cmd
    assert request.headers["args"] == args
    assert request.model is None


def test_each_request_has_its_own_id(session: Session, server: FakeServer) -> None:
    session.list_jobs()
    session.list_jobs()
    assert server.requests[0].headers["id"] != server.requests[1].headers["id"]


def test_replies_are_parsed_into_typed_values(session: Session) -> None:
    status = session.check_status()
    assert isinstance(status, ServerStatus)
    assert status.status == "started" and status.sites == ["site-1", "site-2"]
    assert [j.job_id for j in status.jobs] == ["d4e5f6"]
    assert status.jobs[0].status is JobStatus.RUNNING
    jobs = session.list_jobs()
    assert all(isinstance(j, JobInfo) for j in jobs)
    assert [j.job_id for j in jobs] == ["a1b2c3", "d4e5f6"]
    assert jobs[0].history is None  # not detailed
    assert session.get_job("a1b2c3").status is JobStatus.FINISHED_COMPLETED
    assert session.abort_job("d4e5f6") == AbortResult("d4e5f6", JobStatus.FINISHED_ABORTED)
    assert session.clone_job("a1b2c3") == "clone1"
    assert session.delete_job("clone1") is None
    assert session.tail("server", 2) == "server line 0\nserver line 1\n"
    assert session.cat("site-1", "log.txt") == "contents of log.txt"
    server_status, sites = session.get_system_info()
    assert server_status == session.server_status()
    assert isinstance(sites, SitesStatus) and sites.sites[0].name == "site-1"
    assert sites == session.check_status("client") == session.sites_status()
    info = session.sys_info("site-2")
    assert info == SysInfo("site-2", 4242, "3.11", "Linux", cpus=16)
    detailed = session.list_jobs(detailed=True)
    assert detailed[0].history is not None and detailed[0].history[0].status is JobStatus.SUBMITTED
    stats = session.show_stats("a1b2c3")
    assert stats.status is JobStatus.FINISHED_COMPLETED and stats.rounds[1] == {
        "round": 1,
        "loss": 0.25,
    }
    errors = session.show_errors("a1b2c3")
    assert errors.failure is None and errors.errors == []


def test_a_refusal_raises_admin_error_with_message_and_hint(session: Session) -> None:
    with pytest.raises(AdminError) as caught:
        session.get_job("nope")
    assert str(caught.value) == "no job nope"
    assert caught.value.hint == "list_jobs shows the jobs"
    assert caught.value.exit_code == 8
    assert isinstance(caught.value, FedraError)


def test_stale_replies_are_skipped(session: Session, connection: FakeConnection) -> None:
    stale = {"id": "0" * 32, "ok": True, "data": {"jobs": []}, "error": None, "hint": None}
    connection.replies.append(Envelope("reply", stale))
    assert len(session.list_jobs()) == 2


def test_no_reply_and_broken_connection_become_admin_errors(
    session: Session, connection: FakeConnection
) -> None:
    connection.server.handle = lambda request: Envelope("other", {})  # type: ignore[method-assign]
    with pytest.raises(AdminError, match="no reply to 'list_jobs'"):
        session.list_jobs()
    connection.fail_with = ConnectionResetError("reset by peer")
    with pytest.raises(AdminError, match=r"lost the connection.*reset by peer") as caught:
        session.list_jobs()
    assert caught.value.hint


def test_malformed_replies_are_refused(session: Session, server: FakeServer) -> None:
    server.handle = lambda r: Envelope("reply", {"id": r.headers["id"]})  # type: ignore[method-assign]
    with pytest.raises(AdminError, match="malformed reply"):
        session.list_jobs()
    server.handle = lambda r: Envelope(  # type: ignore[method-assign]
        "reply", {"id": r.headers["id"], "ok": True, "data": {"jobs": "x"}}
    )
    with pytest.raises(AdminError, match=r"malformed reply to 'list_jobs': .* at `\$.jobs`"):
        session.list_jobs()
    server.handle = lambda r: Envelope(  # type: ignore[method-assign]
        "reply",
        {"id": r.headers["id"], "ok": True, "data": {"job_id": "j", "status": "DONE-ISH"}},
    )
    with pytest.raises(AdminError, match=r"malformed reply to 'abort_job': .*\$.status"):
        session.abort_job("j")


def test_bad_arguments_fail_before_sending(session: Session, server: FakeServer) -> None:
    with pytest.raises(UsageError, match="target must be one of server, client"):
        session.check_status("everyone")
    with pytest.raises(UsageError, match="only go with target 'client'"):
        session.shutdown("server", ["site-1"])
    with pytest.raises(UsageError, match="lines must be a positive integer"):
        session.tail("server", 0)
    with pytest.raises(UsageError, match=r"tail: lines: expected 1..10000"):
        session.tail("server", 10**6)  # the declaration's bounds, before sending
    with pytest.raises(UsageError, match="not a job id"):
        session.get_job("../etc")
    assert server.requests == []


def test_closed_session_refuses_commands(connection: FakeConnection) -> None:
    with Session(connection) as session:
        pass
    assert connection.closed and session.closed
    with pytest.raises(AdminError, match="closed"):
        session.list_jobs()


def test_connect_uses_the_kit(kit_dir: Path, fake_connect: list[dict[str, Any]]) -> None:
    with Session.connect(kit_dir, timeout=3.0) as session:
        assert session.kit == AdminKit.load(kit_dir)
    startup = kit_dir / "startup"
    assert fake_connect == [
        {
            "target": "localhost:8003",
            "ca_pem": (startup / "rootCA.pem").read_bytes(),
            "cert_pem": (startup / "client.crt").read_bytes(),
            "key_pem": (startup / "client.key").read_bytes(),
            "server_name": "server",
            "timeout": 3.0,
            "retry_refused": True,
        }
    ]


def test_connect_refuses_a_changed_kit(kit_dir: Path, fake_connect: list[dict[str, Any]]) -> None:
    from fedra.pki import KitTampered

    config = kit_dir / "startup" / "fed_admin.json"
    config.write_text(config.read_text().replace("8003", "9003"))
    with pytest.raises(KitTampered, match=r"fed_admin\.json"):
        Session.connect(kit_dir, timeout=3.0)
    assert fake_connect == []


def test_connect_failure_is_one_admin_error(kit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fedra.transport

    def refuse(target: str, **kwargs: Any) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(fedra.transport, "connect", refuse)
    with pytest.raises(AdminError, match="cannot connect to server localhost:8003") as caught:
        Session.connect(kit_dir)
    assert caught.value.hint and "admin_port" in caught.value.hint


# ---------------------------------------------------------------------- submit


def test_submit_job_uploads_a_zip(
    session: Session, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fedra.admin.session._zip_folder", lambda folder: b"PK-fake-zip")
    job_id = session.submit_job(EXAMPLES / "hello-numpy")
    assert job_id == "new1"
    request = last(server)
    assert request.headers["cmd"] == "submit_job"
    # Signed with the kit's key: the signature verifies against the kit's certificate.
    from fedra.pki import verify_job

    args = request.headers["args"]
    startup = session.kit.root / "startup"  # type: ignore[union-attr]
    signer = verify_job(
        b"PK-fake-zip",
        args["signature"],
        args["certificate"].encode(),
        (startup / "rootCA.pem").read_bytes(),
    )
    assert signer.name == session.kit.name  # type: ignore[union-attr]
    assert request.model is not None and request.model.params is not None
    array = request.model.params["zip"]
    assert array.dtype.name == "uint8" and array.ndim == 1
    assert server.uploads == [b"PK-fake-zip"]


def test_submit_of_a_malformed_job_fails_locally(
    session: Session, server: FakeServer, tmp_path: Path
) -> None:
    job = tmp_path / "bad-job"
    shutil.copytree(EXAMPLES / "hello-numpy", job)
    meta = json.loads((job / "meta.json").read_text())
    (job / "meta.json").write_text(json.dumps({**meta, "min_clients": "two"}))
    with pytest.raises(JobValidationError) as caught:
        session.submit_job(job)
    assert caught.value.file == "meta.json" and caught.value.key == "min_clients"
    assert "meta.json: min_clients" in str(caught.value)
    assert server.requests == []


# ---------------------------------------------------------------------- wait


def test_wait_polls_until_a_final_status(session: Session, server: FakeServer) -> None:
    server.script["d4e5f6"] = ["RUNNING", "RUNNING", "FINISHED:COMPLETED"]
    job = session.wait("d4e5f6", poll=0)
    assert job.status is JobStatus.FINISHED_COMPLETED
    assert [r.headers["cmd"] for r in server.requests] == ["get_job"] * 3


def test_wait_times_out(session: Session) -> None:
    with pytest.raises(TimeoutError) as caught:
        session.wait("d4e5f6", timeout=0.05, poll=0.01)
    assert isinstance(caught.value, WaitTimeout)
    assert "still RUNNING after 0.05 s" in str(caught.value)


# ---------------------------------------------------------------------- download


def test_download_extracts_into_dest_job_id(session: Session, tmp_path: Path) -> None:
    target = session.download_job("a1b2c3", tmp_path / "out")
    assert target == tmp_path / "out" / "a1b2c3"
    assert (target / "workspace" / "summary.json").read_bytes() == b"{}"
    with pytest.raises(ConfigError, match="already exists"):
        session.download_job("a1b2c3", tmp_path / "out")


def test_download_defaults_to_the_kit_transfer_folder(session: Session, kit_dir: Path) -> None:
    assert session.download_job("a1b2c3") == kit_dir / "transfer" / "a1b2c3"


def _link_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("models/evil")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _lying_zip() -> bytes:
    data = bytearray(result_zip({"big.bin": b"x" * 4096}))
    # Declare 16 bytes in the central directory while the entry inflates to 4096.
    offset = data.rfind(b"PK\x01\x02")
    data[offset + 24 : offset + 28] = (16).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize(
    ("archive", "why"),
    [
        (result_zip({"../escape.txt": b"x"}), "'..' is refused"),
        (result_zip({"/etc/cron.d/x": b"x"}), "absolute paths"),
        (result_zip({"C:/x": b"x"}), "drive letters"),
        (result_zip({"a\\..\\x": b"x"}), "backslashes"),
        (_link_zip(), "links are refused"),
        (_lying_zip(), "entry 'big.bin'"),
        (b"not a zip at all", "not a valid zip"),
    ],
)
def test_hostile_downloads_are_refused_and_leave_nothing(
    session: Session, server: FakeServer, tmp_path: Path, archive: bytes, why: str
) -> None:
    server.download = archive
    with pytest.raises(WireError, match=re.escape(why)):
        session.download_job("a1b2c3", tmp_path / "out")
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "escape.txt").exists()


def test_download_size_and_count_caps(tmp_path: Path) -> None:
    from fedra.admin import extract_result

    archive = result_zip({"a": b"x" * 100, "b": b"y" * 100})
    with pytest.raises(WireError, match="more than 150 bytes"):
        extract_result(archive, tmp_path / "one", max_bytes=150)
    with pytest.raises(WireError, match="at most 1"):
        extract_result(archive, tmp_path / "two", max_files=1)
    assert extract_result(archive, tmp_path / "three") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three"]


def test_download_refuses_a_job_id_that_is_not_a_folder_name(session: Session) -> None:
    with pytest.raises(UsageError, match="cannot name a folder"):
        session.download_job("../etc", Path("out"))
