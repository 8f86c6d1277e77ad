"""NVIDIA FLARE 2.9 POC on localhost: start to ready, then timed FedAvg jobs.

Run inside the FLARE virtual environment by ``bench.compare`` (``HOME`` pointed at a
scratch folder, so ``~/.nvflare`` is not touched)::

    python nvflare_poc.py --workdir DIR --models 3x3,100MB --rounds 5 --big-rounds 3

Prepares a POC workspace (``nvflare poc prepare`` with a project file on a free port;
mutual TLS, as FLARE's POC sets up), starts the server and two sites as
``nvflare poc start`` does (each ``startup/sub_start.sh``, FLARE's supervisor loop), and
times from that start to both sites listed by the admin API (``get_system_info``). Each
model then runs as one job built like ``nvflare_sim.py``'s, submitted and monitored
through the FLARE API (``new_secure_session``). Prints ``BENCH-PID server <pid>`` (the tree
the harness samples), ``BENCH-PHASE <model>`` before each job and one ``BENCH-RESULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from _common import Clock, emit
from _deploy import Processes, announce_pid, free_port, phase, wait_for
from nvflare_sim import build_job

SITES = ("site-1", "site-2")
ADMIN = "admin@nvidia.com"
PROJECT = """api_version: 3
name: bench_project
description: Fedra comparison benchmark
participants:
- name: server
  type: server
  org: bench
  default_host: localhost
  fed_learn_port: {port}
- name: admin@nvidia.com
  type: admin
  org: bench
  role: project_admin
{sites}
builders:
- path: nvflare.lighter.impl.workspace.WorkspaceBuilder
  args:
    template_file: [master_template.yml]
- path: nvflare.lighter.impl.static_file.StaticFileBuilder
  args:
    config_folder: config
- path: nvflare.lighter.impl.cert.CertBuilder
- path: nvflare.lighter.impl.signature.SignatureBuilder
"""


def prepare(workdir: Path, env: dict[str, str]) -> Path:
    """``nvflare poc prepare`` with our project file; return the kits' folder."""
    port = free_port()
    sites = "\n".join(f"- name: {s}\n  type: client\n  org: bench" for s in SITES)
    project = workdir / "project.yml"
    project.write_text(PROJECT.format(port=port, sites=sites), encoding="utf-8")
    nvflare = str(Path(sys.executable).parent / "nvflare")
    subprocess.run(
        [nvflare, "poc", "prepare", "-i", str(project), "--force"],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    kits = next(p for p in (workdir / "poc").glob("*/prod_*") if (p / "server").is_dir())
    return kits


def connect(kit: Path, timeout: float = 120):  # type: ignore[no-untyped-def]
    """An admin session (FLARE API, ``new_secure_session``) once the server answers."""
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    session = None

    def attempt() -> bool:
        nonlocal session
        try:
            session = new_secure_session(ADMIN, str(kit), timeout=5.0)
        except Exception:
            return False
        return True

    wait_for(attempt, timeout, "the FLARE admin server", step=0.1)
    return session


def wait_sites(session, sites: list[str], timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    """Until the server lists exactly ``sites`` (``get_system_info``)."""

    def ready() -> bool:
        info = session.get_system_info()
        return sorted(c.name for c in info.client_info) == sorted(sites)

    wait_for(ready, timeout, "the FLARE sites", step=0.05)


def run_job(  # type: ignore[no-untyped-def]
    session,
    workdir: Path,
    model: str,
    rounds: int,
    sites: int,
    round_limit: float = 120,
    init: str = "zeros",
) -> dict[str, object]:
    """Submit one FedAvg job of ``model``, wait for its end (at most 120 s plus
    ``round_limit`` per round); its figures and wall time."""
    out_path = workdir / f"figures-{model}.json"
    out_path.unlink(missing_ok=True)
    job_dir = workdir / f"job-{model}"
    shutil.rmtree(job_dir, ignore_errors=True)
    job = build_job(sites, rounds, model, out_path, init)
    job.export_job(str(job_dir))
    folder = next(p for p in job_dir.iterdir() if p.is_dir())
    phase(model)
    started = time.perf_counter()
    job_id = session.submit_job(str(folder))
    deadline = started + 120 + rounds * round_limit
    while True:
        status = str(session.get_job_meta(job_id).get("status", ""))
        if status.startswith("FINISHED"):
            break
        if time.perf_counter() > deadline:
            session.abort_job(job_id)
            raise SystemExit(f"FLARE job {model} did not finish in time ({status})")
        time.sleep(0.05)
    wall = time.perf_counter() - started
    if status != "FINISHED:COMPLETED" or not out_path.exists():
        raise SystemExit(f"FLARE job {model} ended {status}; see {workdir}/server.log")
    figures = json.loads(out_path.read_text(encoding="utf-8"))
    return {**figures, "wall_s": wall}


def main() -> None:
    """Start the POC, run the jobs, print the figures; stop everything at the end."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--models", default="3x3,100MB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir / "poc", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["NVFLARE_POC_WORKSPACE"] = str(workdir / "poc")
    # sub_start.sh runs `python3 -m nvflare...`: this environment's interpreter first.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    kits = prepare(workdir, env)
    procs = Processes()
    result: dict[str, object] = {"system": "nvflare", "jobs": {}}
    session = None
    try:
        clock = Clock()
        server = procs.start(
            ["bash", str(kits / "server" / "startup" / "sub_start.sh")], workdir / "server.log", env
        )
        announce_pid("server", server.pid)
        for site in SITES:
            procs.start(
                ["bash", str(kits / site / "startup" / "sub_start.sh")],
                workdir / f"{site}.log",
                env,
            )

        session = connect(kits / ADMIN)
        wait_sites(session, list(SITES))
        result["startup_s"] = clock.elapsed()
        for model in [m for m in args.models.split(",") if m]:
            rounds = args.rounds if model == "3x3" else args.big_rounds
            result["jobs"][model] = run_job(session, workdir, model, rounds, len(SITES))  # type: ignore[index]
        phase("end")
    finally:
        if session is not None:
            with contextlib.suppress(Exception):  # best effort at shutdown
                session.close()
        procs.stop_all()
    emit(result)


if __name__ == "__main__":
    main()
