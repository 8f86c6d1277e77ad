"""A fake admin server behind a fake connection: enough of the protocol to drive the clients.

Every envelope crosses the real wire codec both ways, so headers must be strict JSON and the
zip must travel as a uint8 array, as on a real connection.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from fedra.core import FLModel
from fedra.wire import Envelope, decode_envelope, encode_envelope

KIT_CONFIG: dict[str, Any] = {
    "name": "admin@nvidia.com",
    "org": "nvidia",
    "role": "project_admin",
    "server_host": "localhost",
    "server_name": "server",
    "admin_port": 8003,
}
PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


_CA: list[Any] = []


def write_kit(root: Path, **changes: Any) -> Path:
    """A real, signed admin kit (certificates from a test CA) with ``changes`` to its config."""
    from fedra.pki import Identity, create_ca, sign_kit, write_participant

    if not _CA:
        _CA.append(create_ca("admin-tests"))
    ca = _CA[0]
    startup = root / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in {**KIT_CONFIG, **changes}.items() if v is not None}
    (startup / "fed_admin.json").write_text(json.dumps(config))
    identity = Identity(
        str(config.get("name") or "admin@example.org"),
        str(config.get("org") or "org"),
        str(config.get("role") or "project_admin")
        if config.get("role") in ("project_admin", "org_admin", "lead", "member")
        else "project_admin",
    )
    write_participant(startup, ca, identity, file_stem="client")
    sign_kit(root, ca)
    return root


class Refused(Exception):
    """Raised by a handler to answer ok: false."""

    def __init__(self, error: str, hint: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint


def job_record(job_id: str, name: str = "hello-numpy", status: str = "RUNNING") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "name": name,
        "status": status,
        "submitter": "admin@nvidia.com",
        "submitted_at": 1_700_000_000.0,
        "duration_s": 12.5,
    }


def result_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class FakeServer:
    """Answers admin requests from an in-memory job table."""

    def __init__(self) -> None:
        self.requests: list[Envelope] = []
        self.jobs: dict[str, dict[str, Any]] = {
            "a1b2c3": job_record("a1b2c3", status="FINISHED:COMPLETED"),
            "d4e5f6": job_record("d4e5f6", name="cifar10"),
        }
        self.uploads: list[bytes] = []
        self.download: bytes = result_zip({"meta.json": b"{}", "workspace/summary.json": b"{}"})
        #: Statuses get_job reports for a job, one per call (the last one sticks).
        self.script: dict[str, list[str]] = {}
        self.counter = 0

    def handle(self, request: Envelope) -> Envelope:
        self.requests.append(request)
        headers = request.headers
        handler = getattr(self, f"do_{headers['cmd']}", None)
        reply: dict[str, Any] = {"id": headers["id"], "ok": True, "error": None, "hint": None}
        model = None
        try:
            if handler is None:
                raise Refused(f"unknown command {headers['cmd']!r}")
            data, archive = handler(headers["args"], request.model)
            reply["data"] = data
            if archive is not None:
                model = FLModel(params={"zip": np.frombuffer(archive, np.uint8)})
        except Refused as exc:
            reply.update(ok=False, data=None, error=exc.error, hint=exc.hint)
        return Envelope("reply", reply, model)

    def _job(self, args: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(args["job_id"])
        if job is None:
            raise Refused(f"no job {args['job_id']}", "list_jobs shows the jobs")
        return job

    def do_check_status(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        if args["target"] == "server":
            jobs = [
                {k: j[k] for k in ("job_id", "name", "status")}
                for j in self.jobs.values()
                if j["status"] == "RUNNING"
            ]
            data = {"target": "server", "status": "started", "start_time": 1_700_000_000.0}
            return {**data, "jobs": jobs, "sites": ["site-1", "site-2"]}, None
        site = {"name": "site-1", "org": "nvidia", "connected": True, "last_seen_s": 1.5}
        return {"target": "client", "sites": [{**site, "jobs": ["d4e5f6"]}]}, None

    def do_submit_job(self, args: dict[str, Any], model: FLModel | None) -> tuple[Any, None]:
        assert model is not None and model.params is not None
        self.uploads.append(model.params["zip"].tobytes())
        self.counter += 1
        job_id = f"new{self.counter}"
        self.jobs[job_id] = job_record(job_id, status="SUBMITTED")
        return {"job_id": job_id}, None

    def do_list_jobs(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        prefix = args["prefix"] or ""
        jobs = [dict(j) for j in self.jobs.values() if j["job_id"].startswith(prefix)]
        if args["detailed"]:
            for job in jobs:
                job["history"] = [{"status": "SUBMITTED", "at": 1_700_000_000.0, "reason": ""}]
                job["waiting"] = None
                job["failure"] = None
        return {"jobs": jobs}, None

    def do_get_job(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        job = self._job(args)
        script = self.script.get(job["job_id"])
        if script:
            job["status"] = script.pop(0) if len(script) > 1 else script[0]
        return {**job, "history": [], "waiting": None, "failure": None}, None

    def do_abort_job(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        job = self._job(args)
        if job["status"].startswith("FINISHED"):
            raise Refused(f"job {job['job_id']} already finished", "nothing to abort")
        job["status"] = "FINISHED:ABORTED"
        return {"job_id": job["job_id"], "status": job["status"]}, None

    def do_clone_job(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        self._job(args)
        self.jobs["clone1"] = job_record("clone1", status="SUBMITTED")
        return {"job_id": "clone1"}, None

    def do_delete_job(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        del self.jobs[self._job(args)["job_id"]]
        return {}, None

    def do_download_job(self, args: dict[str, Any], model: object) -> tuple[Any, bytes]:
        self._job(args)
        return {"files": 2}, self.download

    def do_show_stats(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        job = self._job(args)
        rounds = [{"round": 0, "loss": 0.5}, {"round": 1, "loss": 0.25}]
        return {"rounds": rounds, "status": job["status"]}, None

    def do_show_errors(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        self._job(args)
        return {"failure": None, "errors": []}, None

    def do_tail(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        text = "".join(f"{args['participant']} line {i}\n" for i in range(args["lines"]))
        return {"text": text}, None

    def do_cat(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        return {"text": f"contents of {args['file']}"}, None

    def do_sys_info(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        info = {"name": args["target"], "pid": 4242, "python": "3.11", "platform": "Linux"}
        return {**info, "cpus": 16}, None

    def do_remove_client(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        return {}, None

    def do_shutdown(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        return {}, None

    def do_restart(self, args: dict[str, Any], model: object) -> tuple[Any, None]:
        return {}, None


class FakeConnection:
    """A Connection whose peer is a FakeServer; replies queue up until received."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.replies: deque[Envelope] = deque()
        self.closed = False
        self.fail_with: Exception | None = None

    def send(self, envelope: Envelope) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        request = decode_envelope(encode_envelope(envelope))
        json.dumps(request.headers, allow_nan=False)
        self.replies.append(decode_envelope(encode_envelope(self.server.handle(request))))

    def recv(self, timeout: float | None = None) -> Envelope:
        if not self.replies:
            raise TimeoutError("no reply")
        return self.replies.popleft()

    def close(self) -> None:
        self.closed = True
