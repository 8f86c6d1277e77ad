"""NVIDIA FLARE 2.9 across hosts: server, sites and admin each on a host of their own.

Run by ``bench.wan_peers`` inside the admin's host of a bed (``bench.netbed``: network
namespaces whose links have a profile's rate, delay and loss), in the FLARE virtual
environment::

    python nvflare_hosts.py --workdir DIR --server-host server1.fedra.test --sites 2 \\
        --netns server=NS0 --netns site-1=NS1 --netns site-2=NS2 --models 100MB --big-rounds 3

Provisions with ``nvflare provision`` (``nvflare poc prepare`` would force the server's
host to ``localhost``): the server participant is named by its host name, so its
certificate's CN and SAN are that name and the sites and the admin connect to it by name
(``fed_client.json``'s target, ``fed_admin.json``'s host; mutual TLS, FLARE's default).
Each kit's ``startup/sub_start.sh`` (FLARE's supervisor loop) runs in its host's namespace
(``ip netns exec``); the admin API (``new_secure_session``) runs here, in the admin's host.
Then each model runs as one job, exactly as ``nvflare_poc.py`` runs it. Prints
``BENCH-PID server <pid>``, ``BENCH-PHASE <model>`` before each job and one
``BENCH-RESULT`` (the same fields as ``nvflare_poc.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from _common import INITS, Clock, emit
from _deploy import Processes, announce_pid, in_netns, parse_netns, phase
from nvflare_poc import ADMIN, connect, run_job, wait_sites

PORT = 8002
PROJECT = """api_version: 3
name: bench_project
description: Fedra comparison benchmark across hosts
participants:
- name: {server}
  type: server
  org: bench
  fed_learn_port: {port}
- name: {admin}
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


def provision(workdir: Path, server: str, sites: list[str], env: dict[str, str]) -> Path:
    """``nvflare provision`` of a server named ``server`` and ``sites``; the kits' folder."""
    lines = "\n".join(f"- name: {s}\n  type: client\n  org: bench" for s in sites)
    project = workdir / "project.yml"
    text = PROJECT.format(server=server, port=PORT, admin=ADMIN, sites=lines)
    project.write_text(text, encoding="utf-8")
    nvflare = str(Path(sys.executable).parent / "nvflare")
    with open(workdir / "provision.log", "wb") as log:
        subprocess.run(
            [nvflare, "provision", "-p", str(project), "-w", str(workdir / "ws"), "--force"],
            env=env, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
    return next((workdir / "ws").glob("*/prod_*"))


def main() -> None:
    """Provision, start every participant on its host, run the jobs, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--server-host", required=True, help="the server's host name")
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--netns", action="append", default=[], help="ROLE=NAMESPACE")
    parser.add_argument("--models", default="100MB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-rounds", type=int, default=3)
    parser.add_argument("--round-limit", type=float, default=300, help="seconds per round")
    parser.add_argument("--init", default="zeros", choices=INITS, help="the initial model")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    hosts = parse_netns(args.netns)
    sites = [f"site-{i + 1}" for i in range(args.sites)]
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir / "ws", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # sub_start.sh runs `python3 -m nvflare...`: this environment's interpreter first.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    kits = provision(workdir, args.server_host, sites, env)
    procs = Processes()
    result: dict[str, object] = {"system": "nvflare", "server": args.server_host,
                                 "init": args.init, "jobs": {}}  # fmt: skip
    session = None
    try:
        clock = Clock()
        for role, kit in [("server", args.server_host), *zip(sites, sites, strict=True)]:
            start = ["bash", str(kits / kit / "startup" / "sub_start.sh")]
            proc = procs.start(in_netns(hosts.get(role), start), workdir / f"{role}.log", env)
            if role == "server":
                announce_pid("server", proc.pid)
        session = connect(kits / ADMIN)
        wait_sites(session, sites, timeout=300)
        result["startup_s"] = clock.elapsed()
        for model in [m for m in args.models.split(",") if m]:
            rounds = args.rounds if model == "3x3" else args.big_rounds
            job = run_job(session, workdir, model, rounds, len(sites), args.round_limit, args.init)
            result["jobs"][model] = job  # type: ignore[index]
        phase("end")
    finally:
        if session is not None:
            with contextlib.suppress(Exception):  # best effort at shutdown
                session.close()
        procs.stop_all()
    emit(result)


if __name__ == "__main__":
    main()
