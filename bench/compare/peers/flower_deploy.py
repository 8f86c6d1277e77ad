"""Flower 1.42 deployment on localhost: a SuperLink and two SuperNodes, then timed runs.

Run inside the Flower virtual environment by ``bench.compare`` (``HOME`` pointed at a
scratch folder; ``FLWR_HOME`` is set to one here)::

    python flower_deploy.py --workdir DIR --models 3x3,100MB --rounds 5 --big-rounds 3

Starts ``flower-superlink`` and two ``flower-supernode`` processes (each spawns its
SuperExec and, per run, ``flwr-serverapp`` / ``flwr-clientapp`` processes, Flower's default
``subprocess`` isolation) with TLS on the SuperLink (a CA and a server certificate made
here; Flower's SuperNodes authenticate the server only: it has no client certificates) and
runtime dependency installation off. "Ready" is both nodes activated in the SuperLink's log
(``[Fleet.ActivateNode]``). Each model is one ``flwr run`` of ``flower_app.py`` (the
workload of ``flower_sim.py``) with ``--stream``, which returns when the run ends. Prints
``BENCH-PID server <pid>`` (the SuperLink, with the ServerApp process below it),
``BENCH-PHASE <model>`` before each run and one ``BENCH-RESULT``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import Clock, emit
from _deploy import Processes, announce_pid, free_ports, phase, wait_for

HERE = Path(__file__).resolve().parent
SITES = 2
PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "benchapp"
version = "1.0.0"
description = "Fedra comparison benchmark workload"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "bench"

[tool.flwr.app.components]
serverapp = "flower_app:server"
clientapp = "flower_app:client"

[tool.flwr.app.config]
sites = 2
rounds = 3
model = "3x3"
init = "zeros"
out = ""
"""


def make_certs(
    folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``hosts`` (names or IP addresses; the first is the
    CN): (ca.pem, server.pem, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    san = x509.SubjectAlternativeName(names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def prepare_app(workdir: Path) -> Path:
    """The Flower App folder (``flower_app.py``, ``_common.py``, ``pyproject.toml``)."""
    app = workdir / "app"
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir()
    shutil.copy(HERE / "flower_app.py", app)
    shutil.copy(HERE / "_common.py", app)
    (app / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    return app


def write_connection(home: Path, address: str, tls: str) -> None:
    """``FLWR_HOME/config.toml``: the SuperLink ``bench`` that ``flwr run`` talks to."""
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "{address}"\n{tls}\n',
        encoding="utf-8",
    )


def wait_activated(link_log: Path, sites: int, timeout: float = 120) -> None:
    """Until the SuperLink's log shows ``sites`` nodes activated."""

    def activated() -> bool:
        text = link_log.read_text(encoding="utf-8", errors="replace")
        return text.count("[Fleet.ActivateNode] Activated") >= sites

    wait_for(activated, timeout, f"{sites} SuperNodes to be activated")


def run_model(
    app: Path, env: dict[str, str], workdir: Path, model: str, rounds: int, sites: int,
    round_limit: float = 300, init: str = "zeros",
) -> dict[str, object]:  # fmt: skip
    """One ``flwr run --stream`` of ``model``; its figures and wall time."""
    bin_dir = Path(sys.executable).parent
    out_path = workdir / f"figures-{model}.json"
    out_path.unlink(missing_ok=True)
    config = f"sites={sites} rounds={rounds} model='{model}' init='{init}' out='{out_path}'"
    phase(model)
    started = time.perf_counter()
    with open(workdir / f"flwr-run-{model}.log", "wb") as log:
        done = subprocess.run(
            [str(bin_dir / "flwr"), "run", str(app), "bench", "--stream",
             "--run-config", config],
            env=env, cwd=app, stdout=log, stderr=subprocess.STDOUT,
            timeout=120 + rounds * round_limit, check=False,
        )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0 or not out_path.exists():
        raise SystemExit(
            f"flwr run ({model}) failed (exit {done.returncode}); "
            f"see {workdir}/flwr-run-{model}.log and {workdir}/superlink.log"
        )
    figures = json.loads(out_path.read_text(encoding="utf-8"))
    return {**figures, "wall_s": wall}


def main() -> None:
    """Start the SuperLink and SuperNodes, run the models, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--models", default="3x3,100MB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-rounds", type=int, default=3)
    parser.add_argument("--insecure", action="store_true", help="no TLS")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir / "flwr-home", ignore_errors=True)
    home = workdir / "flwr-home"
    home.mkdir(parents=True)
    app = prepare_app(workdir)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home)
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    link, *node_ports = free_ports(1 + SITES)
    if args.insecure:
        link_tls = ["--insecure"]
        node_tls = ["--insecure"]
        conn_tls = "insecure = true"
    else:
        ca, cert, key = make_certs(workdir / "certs")
        link_tls = [
            "--ssl-ca-certfile",
            str(ca),
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
        ]
        node_tls = ["--root-certificates", str(ca)]
        conn_tls = f'root-certificates = "{ca}"'
    write_connection(home, f"127.0.0.1:{link}", conn_tls)
    procs = Processes()
    link_log = workdir / "superlink.log"
    link_log.unlink(missing_ok=True)
    result: dict[str, object] = {"system": "flower", "tls": not args.insecure, "jobs": {}}
    try:
        clock = Clock()
        server = procs.start(
            [str(bin_dir / "flower-superlink"), *link_tls, "--host", "127.0.0.1",
             "--port", str(link), "--disable-runtime-dependency-installation"],
            link_log, env,
        )  # fmt: skip
        announce_pid("server", server.pid)
        for i, port in enumerate(node_ports):
            procs.start(
                [str(bin_dir / "flower-supernode"), *node_tls, "--superlink", f"127.0.0.1:{link}",
                 "--port", str(port), "--node-config", f"partition-id={i}"],
                workdir / f"supernode-{i + 1}.log", env,
            )  # fmt: skip
        wait_activated(link_log, SITES)
        result["startup_s"] = clock.elapsed()
        for model in [m for m in args.models.split(",") if m]:
            rounds = args.rounds if model == "3x3" else args.big_rounds
            result["jobs"][model] = run_model(app, env, workdir, model, rounds, SITES)  # type: ignore[index]
        phase("end")
    finally:
        procs.stop_all()
    emit(result)


if __name__ == "__main__":
    main()
