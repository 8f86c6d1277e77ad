"""M1, M2, M3 replayed by a hostile site against real processes (gRPC, mutual TLS).

The hostile site is a client holding site-b's provisioned certificate (site-b's own process is
not started): it answers reservations and start_job like a site, then, during a real job,
sends a ``log`` whose value is "abc" (M1), floods ``may_upload`` (M2), and answers each task
with a result that does not fit the task's model: a 2 MiB result of the wrong shape, a result
declaring 3 GiB of params whose body is never sent, and a result with a param the task does
not have (M3). The honest site-a's job must complete with the model site-a alone gives, the
server must log each refusal, keep its thread count bounded, and stay alive.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedra.core import FLModel
from fedra.pki import TlsFiles
from fedra.protocol import (
    Heartbeat,
    Hello,
    JobState,
    Log,
    MayUpload,
    Reply,
    Request,
    Result,
    StartJob,
    Task,
)
from fedra.runtime.site_resources import SiteResourceBook, load_site_resources
from fedra.transport import ChannelClosed, Connection, connect
from fedra.wire import Envelope
from fedra.wire._proto import fedra_wire_pb2 as pb
from fedra.wire.frame import MAGIC, PREFIX, VERSION, align_up
from tests.e2e.conftest import read, wait_for
from tests.e2e.jobs import arithmetic_job, expected_weights
from tests.e2e.provisioned import SERVER, ProvisionedFederation
from tests.security.conftest import PROJECT_ADMIN, SITE_A, SITE_B, start_federation

FLOOD = 3000  # may_upload messages
HUGE = 3 << 30  # bytes of params a forged result declares


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedFederation]:
    """server1 and the honest site-a; site-b's kit is the hostile client's."""
    federation = start_federation(tmp_path_factory.mktemp("readers"), sites=(SITE_A,))
    try:
        yield federation
    finally:
        federation.stop_all()


def threads(pid: int) -> int:
    for line in read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no process {pid}")


def forged_result_frames(headers: dict[str, Any], declared: int) -> tuple[bytes, bytes]:
    """The head of a RESULT frame whose header declares ``declared`` bytes of params, and a
    last frame that ends it early: the body is never sent."""
    tensor = pb.Tensor(name="w", dtype="uint8", shape=[declared], offset=0, nbytes=declared)
    model = pb.Model(has_params=True, params_type="full", metrics_json="{}", meta_json="{}")
    model.tensors.append(tensor)
    header = pb.FrameHeader(kind=Result.KIND, headers_json=json.dumps(headers), model=model)
    body = header.SerializeToString()
    head = PREFIX.pack(MAGIC, VERSION, len(body)) + body
    head += b"\0" * (align_up(len(head)) - len(head))
    return head, b"\0" * 64


class HostileSite:
    """A client with site-b's certificate that speaks just enough of the protocol."""

    def __init__(self, fed: ProvisionedFederation) -> None:
        kit = fed.kits[SITE_B]
        ca, cert, key = TlsFiles.in_dir(kit / "startup", "client").load()
        self.conn: Connection = connect(
            f"127.0.0.1:{fed.fed_port}",
            ca_pem=ca,
            cert_pem=cert,
            key_pem=key,
            server_name=SERVER,
            timeout=15.0,
        )
        self.resources = SiteResourceBook(SITE_B, load_site_resources(kit)).report()
        self.tasks = 0
        self.refusals: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.conn.send(Envelope(Hello.KIND, {"site": SITE_B, "resources": self.resources}))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self.stop.wait(1.0):
            with contextlib.suppress(ChannelClosed, Exception):
                self.conn.send(Envelope(Heartbeat.KIND, {"jobs": [], "resources": self.resources}))

    def _read(self) -> None:
        with contextlib.suppress(ChannelClosed, Exception):
            while True:
                env = self.conn.recv()
                h = env.headers
                if env.kind == Request.KIND:
                    self.conn.send(Envelope(Reply.KIND, {"id": h["id"], "ok": True, "data": None}))
                elif env.kind == StartJob.KIND:
                    self._on_start(str(h["job_id"]))
                elif env.kind == Task.KIND:
                    self._on_task(h, env.model)
                elif env.kind == "result_refused":  # ResultRefused.KIND
                    self.refusals.append(h)

    def _on_start(self, job_id: str) -> None:
        self.conn.send(Envelope(JobState.KIND, {"job_id": job_id, "state": "started"}))
        self.conn.send(
            Envelope(Log.KIND, {"job_id": job_id, "site": SITE_B, "key": "loss", "value": "abc"})
        )

    def _on_task(self, h: dict[str, Any], task: FLModel | None) -> None:
        headers = {"job_id": h["job_id"], "task_id": h["task_id"], "task_name": h["task_name"]}
        if h["task_name"] != "train":
            self.conn.send(Envelope(Result.KIND, headers, FLModel(metrics={"mean": 0.0})))
            return
        self.tasks += 1
        if self.tasks == 1:
            for i in range(FLOOD):
                self.conn.send(
                    Envelope(MayUpload.KIND, {"id": f"flood-{i}", "job_id": h["job_id"]})
                )
            # 2 MiB of the wrong shape: through the receive gate
            wrong = FLModel(params={"w": np.full(1 << 19, 1e6, np.float32)})
            self.conn.send(Envelope(Result.KIND, headers, wrong))
        elif self.tasks == 2:  # 3 GiB declared, never sent
            head, tail = forged_result_frames(headers, HUGE)
            self.send_raw(head, HUGE + len(head), tail)
        else:  # small, a param the task does not have: checked once it has arrived
            extra = FLModel(params={"w": np.ones(4), "bias": np.full(4, 1e6)})
            self.conn.send(Envelope(Result.KIND, headers, extra))

    def send_raw(self, head: bytes, total: int, tail: bytes) -> None:
        """Frames as an attacker writes them: a head announcing ``total`` bytes, then a last
        frame long before that many bytes have come."""
        from fedra.transport._frames import framed

        out = self.conn._out  # type: ignore[attr-defined]
        with self.conn._send_lock:  # type: ignore[attr-defined]
            out.put(framed(head, total=total, last=False))
            out.put(framed(tail, total=0, last=True))

    def close(self) -> None:
        self.stop.set()
        self.conn.close()


def test_a_hostile_site_cannot_stall_flood_or_poison_a_job(
    fed: ProvisionedFederation, tmp_path: Path
) -> None:
    server_pid = fed.procs[SERVER].pid
    baseline = threads(server_pid)
    hostile = HostileSite(fed)
    try:
        wait_for(
            lambda: "site site-b (org-b) connected" in read(fed.kits[SERVER] / "log.txt"),
            30,
            "the hostile site to be connected",
        )
        job = arithmetic_job(
            tmp_path / "job", tmp_path / "marks", rounds=3, min_clients=1, wait_after_min=60.0
        )
        with fed.session(PROJECT_ADMIN) as admin:
            job_id = admin.submit_job(job)
            most = 0

            def finished() -> bool:
                nonlocal most
                fed.check_alive()
                most = max(most, threads(server_pid))
                return str(admin.get_job(job_id).status).startswith("FINISHED")

            # Each round waits up to 60 s for site-b after site-a: only a refused result that
            # gives its task up lets the three rounds end sooner.
            wait_for(finished, 90, "the job to finish")
            final = admin.get_job(job_id)
            assert final.status == "FINISHED:COMPLETED", final
            folder = admin.download_job(job_id, tmp_path / "download")
        with np.load(folder / "models" / "final.npz") as data:
            np.testing.assert_allclose(data["w"], expected_weights(1, 3))  # site-a's model
        log = read(fed.kits[SERVER] / "log.txt")
        # M1: the malformed log is refused with a line naming the site; the job went on.
        assert "refused a malformed 'log' message from site site-b: log: Expected `float`" in log
        # M2: one grant waits per (site, job); the flood is refused, threads stay bounded.
        refused = f"refused an upload request of site site-b for job {job_id}: it already has"
        assert log.count(refused) < 10  # a few lines for the flood, not one per message
        assert most < baseline + 60, (baseline, most)
        # M3: each result that does not fit its task is refused (site, task, why).
        assert "param 'w' has shape (524288,), the task's model has (4,)" in log
        assert f"its params are {HUGE} bytes, at most" in log
        assert "param 'bias' is not a param of the task's model" in log
        assert log.count("refused the result of site site-b for task") == 3
        wait_for(lambda: len(hostile.refusals) == 3, 10, "the hostile site to hear why")
        assert {r["job_id"] for r in hostile.refusals} == {job_id}
    finally:
        hostile.close()
    fed.check_alive()
