"""FedAvg rounds across hosts over emulated links: ``python -m bench.wan_round``.

A provisioned federation (one server, N sites, an admin; certificates for the hosts' names)
runs in a bed of :mod:`bench.netbed` (one host each, every host on the profile's link), and
the admin submits a FedAvg job of ``--size`` (``bench/job_files/federation_executor.py``:
each site returns ``params + 1``) from its own host. It reports the server job's seconds per
round (the median of rounds 2..N, from its log, as ``bench.federation`` does) against the
link's minimum: the server's link carries the model to N sites and back, so a round needs at
least ``2 x N x model / rate`` plus one round trip. The final model is checked weight
by weight. Needs root (namespaces). Example (issue 16): ``--profile wan --size 50MB``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.federation import (
    RssSampler,
    build_job,
    check_final_model,
    model_layout,
    parse_rounds,
    parse_size,
    write_model,
)
from bench.netbed import PROFILES, NetBed
from fedra.provision import load_project, provision

ADMIN = "admin@central.org"
PROJECT = """\
api_version: 1
name: wan-bench
participants:
  - {{name: {server}, type: server, org: central, fed_learn_port: 8002, admin_port: 8003,
     enable_byoc: true{network}}}
{sites}
  - {{name: {admin}, type: admin, org: central, role: project_admin}}
"""


def submit(kit: Path, job: Path, sites: int, timeout: float) -> None:
    """In the admin's host: wait for ``sites`` sites, submit ``job``, wait for its end and
    print ``{"job_id", "status"}``."""
    from fedra.admin import AdminError, Session
    from fedra.core import FedraError

    deadline = time.monotonic() + timeout
    while True:
        try:
            with Session.connect(kit, timeout=10.0) as session:
                if len(session.sites_status().sites) == sites:
                    break
        except (AdminError, FedraError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the sites")
        time.sleep(0.2)  # polling a remote condition against a deadline
    with Session.connect(kit, timeout=30.0) as session:
        job_id = session.submit_job(job)
        final = session.wait(job_id, timeout=max(1.0, deadline - time.monotonic()))
    print(json.dumps({"job_id": job_id, "status": str(final.status)}), flush=True)


def run(
    profile: str,
    size: str,
    sites: int,
    rounds: int,
    root: Path,
    window: int | None = None,
    *,
    trace: bool = False,
    tuned: bool = False,
) -> dict[str, object]:
    """One job over ``profile``; its rounds, the link's minimum, the server's peak memory
    (server parent + server job) and the CPU each kind of process used during the job.
    ``window``: the server's receive window, written to its ``local/network.json``;
    ``tuned``: the project's server names the profile's path (``network:`` in project.yml)."""
    site_names = [f"site-{i + 1}" for i in range(sites)]
    hosts = ["server1", *site_names, "admin"]
    spec = parse_size(size)
    layout = model_layout(spec, generated=False)
    with NetBed(hosts, PROFILES[profile].link) as bed:
        server = bed.fqdn("server1")
        site = "  - {{name: {0}, type: client, org: org-{0}, enable_byoc: true}}"
        lines = "\n".join(site.format(s) for s in site_names)
        path = PROFILES[profile]
        network = (
            f", network: {{path_mbit: {path.rate_mbit}, path_rtt_ms: {path.rtt_ms}}}"
            if tuned
            else ""
        )
        text = PROJECT.format(server=server, sites=lines, admin=ADMIN, network=network)
        (root / "project.yml").write_text(text)
        project = load_project(root / "project.yml")
        kits = provision(project, root / "workspace", python=sys.executable).kits
        npz = root / "initial.npz"
        model_bytes = write_model(layout, npz)
        job = build_job(root / "job", "wan", rounds, npz, final_validation=False)
        modules = {"server1": "fedra.runtime.server_parent"}
        kit_of = {"server1": kits[server], "admin": kits[ADMIN]}
        kit_of |= {s: kits[s] for s in site_names}
        if window is not None:
            local = kit_of["server1"] / "local" / "network.json"
            local.write_text(json.dumps({"receive_window": window}))
        pids: dict[str, int] = {}
        for host in ["server1", *site_names]:
            module = modules.get(host, "fedra.runtime.site_parent")
            with open(kit_of[host] / "stderr.txt", "ab") as err:
                argv = [sys.executable, "-m", module, "--kit", str(kit_of[host])]
                pids[host] = bed.popen(host, argv, stdout=subprocess.DEVNULL, stderr=err).pid
            if host == "server1":
                _wait_listening(kit_of[host] / "log.txt")
        sampler = RssSampler(pids["server1"], [pids[s] for s in site_names])
        sampler.start()
        tracer = _LinkTrace(bed, root / "link_trace.txt") if trace else None
        sampler.reset()
        load = os.getloadavg()[0]
        argv = [sys.executable, "-m", "bench.wan_round", "--submit", str(kit_of["admin"])]
        argv += ["--job", str(job), "--sites", str(sites)]
        try:
            done = bed.run("admin", argv, timeout=900)
        finally:
            sampler.stop()
            if tracer is not None:
                tracer.stop()
        peaks = sampler.take()
        answer = json.loads(done.stdout)
    workspace = kit_of["server1"] / "store" / "jobs" / answer["job_id"] / "workspace"
    if answer["status"] != "FINISHED:COMPLETED":
        raise SystemExit(f"the job ended {answer['status']}; see {workspace}")
    log = (workspace / "server_job.log").read_text(errors="replace")
    times = [r.seconds for r in parse_rounds(log)]
    check = check_final_model(workspace / "models" / "final.npz", layout, rounds)
    link = PROFILES[profile]
    minimum = 2 * sites * model_bytes * 8 / (link.rate_mbit * 1e6) + link.rtt_ms / 1e3
    per_round = statistics.median(times[1:] or times)
    mib = 1 << 20
    return {
        "profile": profile,
        "size": size,
        "sites": sites,
        "window": "local" if window else ("path" if tuned else "default"),
        "status": answer["status"],
        "round_s": [round(t, 2) for t in times],
        "s_per_round": round(per_round, 2),
        "link_minimum_s": round(minimum, 2),
        "of_link": round(minimum / per_round, 3),
        "final_model": check,
        "server_peak_mib": round(peaks.total / mib),
        "server_peak_of_model": round(peaks.total / model_bytes, 2),
        "sp_peak_mib": round(peaks.sp / mib),
        "sj_peak_mib": round(peaks.sj / mib),
        "cpu_s": {role: round(u.user_s + u.sys_s, 1) for role, u in sorted(peaks.cpu.items())},
        "load_before": round(load, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }


class _LinkTrace(threading.Thread):
    """Writes the server's link use every 0.1 s: time, MB out and in since the last line."""

    def __init__(self, bed: NetBed, path: Path) -> None:
        super().__init__(name="link-trace", daemon=True)
        self._bed = bed
        self._file = path.open("w")
        self._stop_event = threading.Event()
        self.start()

    def run(self) -> None:
        last = (0, 0)
        while not self._stop_event.wait(0.1):
            link = self._bed.stats()["server1"]
            now = (link.egress.bytes, link.ingress.bytes)
            out, into = ((a - b) / 1e6 for a, b in zip(now, last, strict=True))
            self._file.write(f"{time.time():.3f} out {out:7.2f} in {into:7.2f}\n")
            last = now

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)
        self._file.close()


def _wait_listening(log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "listening" not in (log.read_text(errors="replace") if log.exists() else ""):
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not listen; see {log.parent}")
        time.sleep(0.05)


def matrix(size: str, rounds: int, *, tuned: bool) -> int:
    """Every profile with 2 and 8 sites: one JSON line each, then a Markdown table."""
    rows: list[dict[str, object]] = []
    for profile in ("lan", "wan", "far"):
        for sites in (2, 8):
            with tempfile.TemporaryDirectory(prefix="fedra-wan-") as tmp:
                root = Path(tmp)
                root.chmod(0o755)
                row = run(profile, size, sites, rounds, root, tuned=tuned)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(
        "| profile | sites | s/round (rounds) | link minimum | x minimum | server peak "
        "| CPU s (SP, SJ, site parents, site jobs) | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = r["cpu_s"]
        assert isinstance(cpu, dict)
        used = ", ".join(str(cpu.get(k, 0)) for k in ("SP", "SJ", "site parent", "site job"))
        rounds_s = ", ".join(str(t) for t in r["round_s"])  # type: ignore[attr-defined]
        ratio = float(r["s_per_round"]) / float(r["link_minimum_s"])  # type: ignore[arg-type]
        print(
            f"| {r['profile']} | {r['sites']} | **{r['s_per_round']}** ({rounds_s}) "
            f"| {r['link_minimum_s']} s | {ratio:.2f}x | {r['server_peak_mib']} MiB "
            f"({r['server_peak_of_model']}x) | {used} | {r['load_before']}-{r['load_after']} |"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.wan_round", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="wan")
    parser.add_argument("--size", default="50MB", help="model size, e.g. 3x3, 50MB, 100MB")
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--window", type=int, help="the server's receive window in bytes (local/network.json)"
    )
    parser.add_argument("--keep", type=Path, help="keep the kits and logs in this new folder")
    parser.add_argument(
        "--trace", action="store_true", help="with --keep: the server's link use, every 0.1 s"
    )
    parser.add_argument(
        "--tuned", action="store_true", help="project.yml names the profile's path (network:)"
    )
    parser.add_argument(
        "--matrix", action="store_true", help="every profile with 2 and 8 sites (make bench-wan)"
    )
    parser.add_argument("--submit", type=Path, help=argparse.SUPPRESS)  # the admin's side
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.submit is not None:
        submit(args.submit, args.job, args.sites, timeout=900)
        return 0
    if args.matrix:
        return matrix(args.size, args.rounds, tuned=args.tuned)
    if args.keep is not None:
        args.keep.mkdir(mode=0o755, parents=True)
        result = run(
            args.profile,
            args.size,
            args.sites,
            args.rounds,
            args.keep,
            args.window,
            trace=args.trace,
            tuned=args.tuned,
        )
    else:
        with tempfile.TemporaryDirectory(prefix="fedra-wan-") as tmp:
            root = Path(tmp)
            root.chmod(0o755)  # job processes run as a user of their own under root
            result = run(
                args.profile,
                args.size,
                args.sites,
                args.rounds,
                root,
                args.window,
                tuned=args.tuned,
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
