"""The POC journey's rough edges: a quiet start, a complete download, a missing model said."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Federation, make_federation, pid_alive, read, wait_for
from tests.e2e.jobs import arithmetic_job

pytestmark = pytest.mark.timeout(240)


def _eof_within(fd: int, seconds: float) -> tuple[bool, bytes]:
    """(whether the pipe ``fd`` reached its end within ``seconds``, what came through it)."""
    data, deadline = b"", time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            return True, data
        data += chunk
    return False, data


def test_start_sh_returns_the_terminal_and_logs_to_log_txt(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "poc", 1)
    server = fed.layout.server
    proc = subprocess.Popen(
        [str(server / "startup" / "start.sh")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pgid = None
    try:
        assert proc.wait(60) == 0
        wait_for(lambda: "listening" in fed.log("server"), 60, "the server to listen")
        pgid = int(read(server / "daemon_pid.fl"))
        assert proc.stdout is not None
        # Nothing the server started holds the terminal: its end comes once start.sh exits.
        ended, said = _eof_within(proc.stdout.fileno(), 10)
        assert ended, f"the server still writes to the terminal of start.sh: {said!r}"
        assert said.decode().splitlines() == [f"started server (log: {server}/log.txt)"]
        assert fed.log("server").count("listening") == 1  # each line once in log.txt
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        done = subprocess.run(
            [str(server / "startup" / "stop_fl.sh")], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        if pgid is not None:
            wait_for(lambda: not pid_alive(pgid), 30, "the server to stop")


def test_a_download_has_summary_json(federation: Federation, tmp_path: Path) -> None:
    job = arithmetic_job(tmp_path / "arith", tmp_path / "marks", rounds=2)
    with federation.session() as session:
        job_id = session.submit_job(job)
        final = session.wait(job_id, timeout=120)
        assert final.status == "FINISHED:COMPLETED", final
        out = session.download_job(job_id, tmp_path / "download")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["job_id"] == job_id and summary["status"] == "FINISHED:COMPLETED"
    assert [r["round"] for r in summary["rounds"] if r["workflow"] == "FedAvg"] == [1, 2]
    assert sorted(summary["sites"]) == ["site-1", "site-2"]
    assert "final.npz" in summary["models"]
    assert summary["error"] is None
    assert [h["status"] for h in summary["history"]][-1] == "FINISHED:COMPLETED"
