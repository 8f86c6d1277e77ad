"""Flower 1.42 across hosts: the SuperLink, each SuperNode and ``flwr run`` on their own hosts.

Run by ``bench.wan_peers`` inside the admin's host of a bed (``bench.netbed``: network
namespaces whose links have a profile's rate, delay and loss), in the Flower virtual
environment::

    python flower_hosts.py --workdir DIR --server-host server1.fedra.test --sites 2 \\
        --netns server=NS0 --netns site-1=NS1 --netns site-2=NS2 --models 100MB --big-rounds 3

The SuperLink runs in the server's host (``ip netns exec``), listening on all of its
addresses (``--host 0.0.0.0``: Flower 1.42 serves the Fleet, Control and Runtime APIs on
one port) with TLS: a CA and a server certificate for the server's host name (its CN and
first SAN; also ``localhost``/``127.0.0.1`` for the ServerApp process the SuperLink starts
beside it). Each SuperNode runs in its site's host and reaches the SuperLink by the host
name (``--superlink server1.fedra.test:9093 --root-certificates ca.pem``; Flower's
SuperNodes authenticate the server only). ``flwr run`` runs here, in the admin's host, with
``FLWR_HOME/config.toml`` naming the SuperLink by host name. Each model is then one run of
``flower_app.py``, as ``flower_deploy.py`` runs it. Prints ``BENCH-PID server <pid>`` (the
SuperLink and the ServerApp below it), ``BENCH-PHASE <model>`` before each run and one
``BENCH-RESULT`` (the same fields as ``flower_deploy.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from _common import INITS, Clock, emit
from _deploy import Processes, announce_pid, in_netns, parse_netns, phase
from flower_deploy import make_certs, prepare_app, run_model, wait_activated, write_connection

#: The SuperLink's port (one HTTP API) and each SuperNode's own Runtime API port.
LINK_PORT = 9093
NODE_PORT = 9094


def main() -> None:
    """Start the SuperLink and SuperNodes on their hosts, run the models, print figures."""
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
    hosts = parse_netns(args.netns)
    sites = [f"site-{i + 1}" for i in range(args.sites)]
    workdir = Path(args.workdir).resolve()
    home = workdir / "flwr-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    app = prepare_app(workdir)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home)
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    short = args.server_host.split(".")[0]
    names = (args.server_host, short, "localhost", "127.0.0.1", "0.0.0.0")
    ca, cert, key = make_certs(workdir / "certs", names)
    link_tls = ["--ssl-ca-certfile", str(ca), "--ssl-certfile", str(cert),
                "--ssl-keyfile", str(key)]  # fmt: skip
    address = f"{args.server_host}:{LINK_PORT}"
    write_connection(home, address, f'root-certificates = "{ca}"')
    procs = Processes()
    link_log = workdir / "superlink.log"
    link_log.unlink(missing_ok=True)
    result: dict[str, object] = {"system": "flower", "tls": True, "server": address,
                                 "init": args.init, "jobs": {}}  # fmt: skip
    try:
        clock = Clock()
        superlink = [str(bin_dir / "flower-superlink"), *link_tls, "--host", "0.0.0.0",
                     "--port", str(LINK_PORT),
                     "--disable-runtime-dependency-installation"]  # fmt: skip
        server = procs.start(in_netns(hosts.get("server"), superlink), link_log, env)
        announce_pid("server", server.pid)
        for i, site in enumerate(sites):
            node = [str(bin_dir / "flower-supernode"), "--root-certificates", str(ca),
                    "--superlink", address, "--port", str(NODE_PORT),
                    "--node-config", f"partition-id={i}"]  # fmt: skip
            procs.start(in_netns(hosts.get(site), node), workdir / f"{site}.log", env)
        wait_activated(link_log, len(sites), timeout=300)
        result["startup_s"] = clock.elapsed()
        for model in [m for m in args.models.split(",") if m]:
            rounds = args.rounds if model == "3x3" else args.big_rounds
            figures = run_model(
                app, env, workdir, model, rounds, len(sites), args.round_limit, args.init
            )
            result["jobs"][model] = figures  # type: ignore[index]
        phase("end")
    finally:
        procs.stop_all()
    emit(result)


if __name__ == "__main__":
    main()
