"""Starting a server job process: the job's checks, its user and kit copy, its ready message.

The server parent calls :func:`start_server_job` for each job it starts or resumes. Either the
job process is running and has said it is ready, or an exception says why not and nothing of
the attempt is left running (the job's folder is handed back to the parent).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from fedra.core import FedraError
from fedra.jobstore import JobStore
from fedra.protocol import FROM_SERVER_JOB, BadMessage, Ready, decode
from fedra.runtime.config import ServerKit
from fedra.runtime.isolation import prepare_job, reclaim
from fedra.runtime.procs import JobListener, end_group, spawn
from fedra.transport import LocalChannel, Spool, accept_channel

#: Seconds a new job process has to connect to its parent, then to say it is ready.
CONNECT_TIMEOUT_S, READY_TIMEOUT_S = 60.0, 120.0


def start_server_job(
    kit: ServerKit,
    ca_pem: bytes,
    store: JobStore,
    spool: Spool,
    job_id: str,
    sites: Sequence[str],
    resume: bool,
) -> tuple[subprocess.Popen[bytes], LocalChannel, Path]:
    """Unpack the job, check the server's own BYOC policy, start its process and wait until
    it is ready: (process, channel to it, its log file)."""
    from fedra.job.archive import unzip_job
    from fedra.runtime.byoc import check_server_job  # loads the job package: on first use

    workspace = store.workspace(job_id)
    job_dir = workspace / "job"
    proc: subprocess.Popen[bytes] | None = None
    try:
        if not job_dir.exists():
            unzip_job(store.job_zip(job_id), job_dir)
        check_server_job(kit, ca_pem, store, job_id, job_dir)  # BYOC, by content
        listener = JobListener("fedra-sj-", "sj.sock")
        launch = prepare_job(kit.root, workspace, Path(listener.folder))  # its user, a kit copy
        log_path = workspace / "server_job.log"
        args = [
            *("--job-id", job_id, "--job-dir", str(job_dir), "--workspace", str(workspace)),
            *("--socket", listener.path, "--sites", ",".join(sites), "--kit", str(launch.kit)),
            *(["--resume"] if resume else []),
        ]
        proc = spawn("fedra.runtime.server_job", args, log_path, workspace, launch.env, launch.user)
        try:
            channel = accept_channel(
                listener, timeout=CONNECT_TIMEOUT_S, spool=spool, pass_files=True
            )
            ready = channel.recv(timeout=READY_TIMEOUT_S)
        finally:
            listener.close()
        try:
            first = decode(ready, FROM_SERVER_JOB)
        except BadMessage as exc:
            raise FedraError(f"server job process sent a bad first message: {exc}") from None
        if not isinstance(first, Ready):
            raise FedraError(f"server job process sent {ready.kind!r} instead of ready")
    except BaseException:
        if proc is not None:
            end_group(proc, grace=2.0)
        reclaim(workspace)
        raise
    return proc, channel, log_path
