"""Limits before trust on the admin port, replayed against a real server (rows H2, M4, L3).

An attacker holds a real admin certificate of the project (``member`` included) and writes
frames as it likes: it declares a message's size in the first frame and streams the rest.
The server judges that first frame before buffering anything more: a command bigger than
1 MiB, an upload from a role that may not submit jobs, a job bigger than the server's
``max_job_bytes`` (set to 2 MiB here) are refused at once, and the server's memory does not
grow. One identity holds at most 8 admin connections, so it cannot lock the others out. Job
zips with junk bytes, or with an ``.npz`` that expands to gigabytes, are refused by name.
"""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedra.admin import AdminError, Session
from fedra.admin.kit import AdminKit
from fedra.core import FedraError
from fedra.job import zip_job
from fedra.pki import CertKey, sign_job, sign_kit
from fedra.transport import ChannelClosed, Connection, connect
from fedra.transport._stream import FRAME_SIZE, StreamConnection, encode_frame
from fedra.wire import Envelope, prepare_envelope
from tests.e2e.conftest import read, wait_for
from tests.e2e.jobs import arithmetic_job
from tests.e2e.provisioned import SERVER, ProvisionedFederation, free_ports, provision_project
from tests.security.conftest import LEAD_A, MEMBER_A, PARTICIPANTS, PROJECT_ADMIN

MIB = 1 << 20
#: The server's max_job_bytes in this module's federation.
MAX_JOB = 2 * MIB


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """A provisioned server (no sites needed) whose fed_server.json says max_job_bytes=2 MiB."""
    root = tmp_path_factory.mktemp("limits")
    fed_port, admin_port = free_ports()
    kits = provision_project(root, "limits", fed_port, admin_port, PARTICIPANTS)
    config = kits[SERVER] / "startup" / "fed_server.json"
    settings = json.loads(config.read_text())
    settings["max_job_bytes"] = MAX_JOB
    config.write_text(json.dumps(settings))
    state = root / "workspace" / "limits" / "state"  # the project's CA signs the kit again
    ca = CertKey(
        cert_pem=(state / "rootCA.pem").read_bytes(), key_pem=(state / "rootCA.key").read_bytes()
    )
    sign_kit(kits[SERVER], ca)
    federation = ProvisionedFederation(kits, fed_port, admin_port)
    try:
        federation.start(SERVER)

        def listening() -> bool:
            federation.check_alive()
            return "listening" in read(kits[SERVER] / "log.txt")

        wait_for(listening, 60, "the server to listen")
        yield federation
    finally:
        federation.stop_all()


def raw_connection(fed: ProvisionedFederation, admin: str) -> StreamConnection:
    """A transport connection to the admin port with ``admin``'s certificate, as an attacker
    with that kit would open it (no Session, no checks on this side)."""
    kit = AdminKit.find(fed.kits[admin])
    ca, cert, key = kit.credentials()
    conn = connect(kit.target, ca_pem=ca, cert_pem=cert, key_pem=key, server_name=kit.server_name)
    assert isinstance(conn, StreamConnection)
    return conn


def declare_and_stream(conn: StreamConnection, cmd: str, declared: int, send: int) -> str:
    """Begin an admin ``cmd`` message declaring ``declared`` bytes, stream up to ``send``
    bytes of it; why the connection ended (the server's refusal), or "" if still open."""
    head = prepare_envelope(Envelope("admin", {"id": "x", "cmd": cmd, "args": {}})).head
    out = conn._out  # the attacker writes frames directly
    if not out.put(encode_frame(head, total=declared, last=False)):
        return str(out.reason)
    zeros, sent = bytes(FRAME_SIZE), len(head)
    while sent + FRAME_SIZE < min(declared, send):
        if not out.put(encode_frame(zeros, total=0, last=False)):
            return str(out.reason)
        sent += FRAME_SIZE
    out.wait_empty(10.0)
    try:
        conn.recv(timeout=5.0)
    except ChannelClosed as exc:
        return str(exc)
    except TimeoutError:
        return ""
    return ""


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid`` in bytes."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def log_of(fed: ProvisionedFederation) -> str:
    return read(fed.kits[SERVER] / "log.txt")


@pytest.mark.parametrize(
    ("admin", "cmd", "declared", "why"),
    [
        # H2: a member's 200 MB command; "Also seen": a 2 GB job upload (limit: 2 MiB here)
        (MEMBER_A, "list_jobs", 200 * MIB, "above the limit of 1048576"),
        (MEMBER_A, "submit_job", 200 * MIB, "may not submit jobs"),
        (LEAD_A, "submit_job", 2 << 30, f"above the server's limit of {MAX_JOB} bytes"),
    ],
)
def test_a_big_admin_message_is_refused_before_it_is_buffered(
    fed: ProvisionedFederation, admin: str, cmd: str, declared: int, why: str
) -> None:
    pid = fed.procs[SERVER].pid
    rss_before, hwm_before = memory(pid)
    conn = raw_connection(fed, admin)
    try:
        ended = declare_and_stream(conn, cmd, declared, send=48 * MIB)
        rss_after, hwm_after = memory(pid)  # measured while the attacker's stream is open
    finally:
        conn.close()
    assert why in ended, ended
    assert rss_after - rss_before < 8 * MIB, (rss_before, rss_after)
    assert hwm_after - hwm_before < 8 * MIB, (hwm_before, hwm_after)
    fed.check_alive()
    assert f"admin {admin}" in log_of(fed) and why in log_of(fed)
    with fed.session(PROJECT_ADMIN) as session:  # the server still serves
        assert session.server_status().status == "started"


def test_one_admin_holding_many_connections_does_not_lock_out_the_others(
    fed: ProvisionedFederation,
) -> None:
    opened: list[Connection] = []
    refusals: list[str] = []

    def open_one(_: int) -> None:
        try:
            opened.append(raw_connection(fed, MEMBER_A))
        except FedraError as exc:
            refusals.append(str(exc))

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(open_one, range(64)))
        # 8 at most (fewer if a connection of an earlier test is still being let go)
        assert 1 <= len(opened) <= 8 and len(refusals) == 64 - len(opened), refusals[:1]
        assert all("holds 8 admin connections already" in why for why in refusals)
        for admin in (PROJECT_ADMIN, LEAD_A):
            with fed.session(admin) as session:
                assert session.server_status().status == "started"
    finally:
        for conn in opened:
            conn.close()
    assert "refused an admin connection of member@org-a.org" in log_of(fed)
    wait_for(lambda: _member_can_connect(fed), 15, "the member's connections to be released")


def _member_can_connect(fed: ProvisionedFederation) -> bool:
    try:
        with fed.session(MEMBER_A) as session:
            return bool(session.server_status().status == "started")
    except AdminError:
        return False


def upload(session: Session, archive: bytes) -> Any:
    """Submit ``archive`` as it is, signed by the session's admin (no local checks)."""
    assert session.kit is not None
    _, cert, key = session.kit.credentials()
    args = {"signature": sign_job(archive, key), "certificate": cert.decode()}
    return session._call("submit_job", args, zip=archive)


def job_folder(tmp_path: Path) -> Path:
    return arithmetic_job(tmp_path / f"job-{uuid.uuid4().hex[:6]}", tmp_path / "marks")


def test_a_job_within_the_limit_above_one_mib_is_accepted(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    folder = job_folder(tmp_path)
    (folder / "app" / "custom" / "data.bin").write_bytes(os.urandom(3 * MIB // 2))
    with fed.session(LEAD_A) as session:
        job_id = session.submit_job(folder)
        assert session.get_job(job_id).job_id == job_id


def test_a_job_above_max_job_bytes_is_refused(fed: ProvisionedFederation, tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    (folder / "app" / "custom" / "big.bin").write_bytes(os.urandom(3 * MIB))
    with fed.session(LEAD_A) as session, pytest.raises(AdminError) as refused:
        session.submit_job(folder)
    message = str(refused.value)
    assert message.startswith("the server refused 'submit_job': the job upload is"), message
    assert f"above the server's limit of {MAX_JOB} bytes" in message
    fed.check_alive()


def test_a_junk_prefixed_job_zip_is_refused(fed: ProvisionedFederation, tmp_path: Path) -> None:
    archive = os.urandom(MIB) + zip_job(job_folder(tmp_path))  # L3: still a readable zip
    with fed.session(LEAD_A) as session:
        before = len(session.list_jobs())
        with pytest.raises(AdminError) as refused:
            upload(session, archive)
        assert "bytes of junk" in str(refused.value)
        assert len(session.list_jobs()) == before  # nothing stored, nothing sent to sites
    fed.check_alive()
    assert f"refused a job of {len(archive)} bytes from {LEAD_A}" in log_of(fed)


def lying_npz(nbytes: int) -> bytes:
    """A few hundred bytes of .npz whose array header declares ``nbytes`` of float64."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (nbytes // 8,)}
    )
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", header.getvalue())  # the header only: the data never comes
    return data.getvalue()


def test_a_tiny_job_whose_npz_expands_to_gigabytes_is_refused(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    folder = job_folder(tmp_path)
    (folder / "app" / "custom" / "init.npz").write_bytes(lying_npz(2 << 30))
    archive = zip_job(folder)
    assert len(archive) < 16 << 10
    with fed.session(LEAD_A) as session, pytest.raises(AdminError) as refused:
        upload(session, archive)
    message = str(refused.value)
    assert "init.npz" in message and "2147483648 bytes once loaded" in message, message
    fed.check_alive()
    assert "2147483648 bytes once loaded" in log_of(fed)
