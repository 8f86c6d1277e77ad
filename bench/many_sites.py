"""A thousand connected sites (issue 16): one real server parent, N provisioned sites.

Run with ``.venv/bin/python -m bench.many_sites --sites 1000 --rounds 3`` (``--help``). It

1. provisions a project (``project.yml`` through :func:`fedra.provision.provision`) with one
   server on 127.0.0.1 (free ports), one lead admin and N sites, each with its own EC P-256
   certificate and signed kit;
2. starts the real server parent (``python -m fedra.runtime.server_parent --kit ...``) in a
   session of its own (ended by process group at the end, also on failure);
3. starts ``--procs`` load processes (``bench.many_sites_load``), each holding its share of
   the sites as real mutual-TLS gRPC connections, with each site's own certificate, speaking
   the site protocol of :mod:`fedra.protocol` (hello, heartbeats at the kit's interval,
   requests answered by the site parent's own ``SiteDesk``, and a stand-in for the site
   job process of a 3x3 FedAvg job: see that module for what is simulated);
4. measures the server parent while the N sites only heartbeat (``--idle`` seconds): CPU
   seconds, threads, open file descriptors;
5. submits, through :class:`fedra.admin.Session`, a FedAvg job (3x3 float32 model, final
   validation off, ``min_clients = N``), built as ``bench.compare.fedra_run`` builds it: the
   real server job process runs FedAvg over all N sites, and the final model is checked
   (every weight = number of rounds).

Reported: provisioning time, connect time for all N (from starting the load processes to
the server listing N sites), seconds per round (the server job's log, as
``bench.federation.parse_rounds`` reads it; all rounds and the median of rounds 2..N),
the server parent's RSS (sampled every 0.2 s, and its ``VmHWM``) and the server job's, the
server parent's threads and file descriptors, and the CPU the server parent spends on
heartbeats. ``--json FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import psutil

from bench.federation import free_port, is_server_job, parse_rounds, port_open, vm_hwm, wait_for
from bench.machine import machine_info

REPO = Path(__file__).resolve().parents[1]
LEAD = "lead@example.org"
SERVER = "server1"
GiB = 2**30
MiB = 2**20
#: Targets of the issue.
TARGET_ROUND_S = 2.0
TARGET_SERVER_RSS = GiB


def project_yaml(name: str, sites: int, fed_port: int, admin_port: int) -> str:
    """A ``project.yml`` with one server on 127.0.0.1, one lead admin and ``sites`` sites."""
    lines = [
        "api_version: 1",
        f"name: {name}",
        "participants:",
        f"  - {{name: {SERVER}, type: server, org: central, host: 127.0.0.1, "
        f"fed_learn_port: {fed_port}, admin_port: {admin_port}, enable_byoc: true}}",
        f"  - {{name: {LEAD}, type: admin, org: org-0, role: lead}}",
    ]
    lines += [
        f"  - {{name: {site_name(i)}, type: client, org: org-{i % 10}}}" for i in range(sites)
    ]
    return "\n".join(lines) + "\n"


def site_name(index: int) -> str:
    """The name of site ``index`` (0-based)."""
    return f"site-{index + 1:04d}"


def provision_many(folder: Path, sites: int) -> tuple[dict[str, Path], int, int, float]:
    """Provision the project into ``folder``: (kits, FL port, admin port, seconds)."""
    from fedra.provision import load_project, provision

    fed_port, admin_port = free_port(), free_port()
    while admin_port == fed_port:
        admin_port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    project_file = folder / "project.yml"
    project_file.write_text(project_yaml("many-sites", sites, fed_port, admin_port))
    started = time.perf_counter()
    result = provision(load_project(project_file), folder / "workspace", python=sys.executable)
    return result.kits, fed_port, admin_port, time.perf_counter() - started


def provisioned(folder: Path, sites: int) -> tuple[dict[str, Path], int, int, float] | None:
    """The kits a previous run with ``--workdir folder --sites sites`` provisioned, if any
    (and its ports are free again)."""
    from fedra.provision import Server, load_project

    prod = folder / "workspace" / "many-sites" / "prod_00"
    if not (folder / "project.yml").is_file() or not prod.is_dir():
        return None
    project = load_project(folder / "project.yml")
    server = next(p for p in project.participants if isinstance(p, Server))
    if len(project.clients) != sites or port_open(server.fed_learn_port):
        return None
    kits = {p.name: prod / p.name for p in project.participants}
    return kits, server.fed_learn_port, server.admin_port, 0.0


# -- processes --------------------------------------------------------------------------------
def spawn(args: list[str], log: Path, **kwargs: object) -> subprocess.Popen[str]:
    """``python -m ...`` in a session of its own (ended by process group), stderr to ``log``."""
    with open(log, "ab") as stderr:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [sys.executable, "-m", *args],
            cwd=REPO,
            stderr=stderr,
            start_new_session=True,
            text=True,
            **kwargs,
        )


def end_group(proc: subprocess.Popen[str], grace: float = 15.0) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL after ``grace`` s; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class Loader:
    """One load process and what it reported."""

    proc: subprocess.Popen[str]
    lines: list[dict[str, object]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def read(self) -> None:
        """Collect its JSON lines (in a thread of its own)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                self.lines.append(record)
                if record.get("event") == "ready":
                    self.ready.set()

    def stop(self) -> dict[str, object]:
        """Tell it to stop; its final counters."""
        stdin: IO[str] | None = self.proc.stdin
        with contextlib.suppress(OSError, ValueError):
            assert stdin is not None
            stdin.write("stop\n")
            stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        end_group(self.proc, grace=5.0)
        if self.reader is not None:
            self.reader.join(10.0)  # it reads to the end of the output of the ended process
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        stats = [r for r in self.lines if r.get("event") == "stats"]
        return stats[-1] if stats else {}


def start_loaders(kits: Sequence[Path], procs: int, work: Path) -> list[Loader]:
    """``procs`` load processes, the sites dealt round-robin among them."""
    loaders = []
    for index in range(procs):
        share = kits[index::procs]
        listing = work / f"load-{index}.txt"
        listing.write_text("".join(f"{k}\n" for k in share))
        proc = spawn(
            ["bench.many_sites_load", "--kits", str(listing)],
            work / f"load-{index}.stderr.txt",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        loader = Loader(proc)
        loader.reader = threading.Thread(target=loader.read, daemon=True)
        loader.reader.start()
        loaders.append(loader)
    return loaders


# -- measuring the server -------------------------------------------------------------------
@dataclass
class Sampler:
    """Samples the server parent (and its server job, when one runs) every 0.2 s."""

    pid: int
    peak_rss: int = 0
    peak_job_rss: int = 0
    job_hwm: int = 0
    peak_threads: int = 0
    peak_fds: int = 0
    #: CPU seconds of the last server job seen.
    job_cpu: float = 0.0
    #: (wall clock, CPU seconds) of the server parent at each sample.
    cpu: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Sample in a thread of its own."""
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the server parent spent between two wall-clock times (the samples
        nearest inside them)."""
        inside = [cpu for when, cpu in self.cpu if start <= when <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else float("nan")

    def _run(self) -> None:
        server = psutil.Process(self.pid)
        while not self._stop.wait(0.2):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, server.memory_info().rss)
                self.peak_threads = max(self.peak_threads, server.num_threads())
                self.peak_fds = max(self.peak_fds, server.num_fds())
                times = server.cpu_times()
                self.cpu.append((time.time(), times.user + times.system))
                for child in server.children():
                    if is_server_job(child):
                        self.peak_job_rss = max(self.peak_job_rss, child.memory_info().rss)
                        self.job_hwm = max(self.job_hwm, vm_hwm(child.pid))
                        self.job_cpu = cpu_seconds(child.pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# -- the job --------------------------------------------------------------------------------
def run_job(session: object, work: Path, sites: int, rounds: int, timeout: float) -> str:
    """Submit the 3x3 FedAvg job (min_clients = all sites); its id once it is final."""
    from bench.compare.fedra_run import build_job, write_initial

    npz = work / "initial.npz"
    write_initial(npz, "3x3")
    folder = work / "job"
    shutil.rmtree(folder, ignore_errors=True)
    build_job("many-sites", sites, rounds, npz).export(folder)
    job_id: str = session.submit_job(folder)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        record = session.get_job(job_id)  # type: ignore[attr-defined]
        if record.status.is_final:
            if record.status.value != "FINISHED:COMPLETED":
                raise SystemExit(f"the job ended {record.status.value}: {record}")
            return job_id
        if time.monotonic() > deadline:
            session.abort_job(job_id)  # type: ignore[attr-defined]
            raise SystemExit(f"the job did not finish within {timeout:.0f} s")
        time.sleep(0.2)


def check_final(workspace: Path, rounds: int) -> str:
    """Every weight of the final model is ``rounds`` (params + 1 per round from zeros)."""
    from fedra.serverapp import load_npz

    final = load_npz(workspace / "models" / "final.npz")
    worst = max(float(np.max(np.abs(a - rounds))) for a in final.values())
    if worst > 1e-4:
        raise SystemExit(f"the final model is wrong: max |w - {rounds}| = {worst}")
    return f"ok: every weight = {rounds}"


# -- the run --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, object]:
    """Provision, start, load, measure; the figures."""
    from fedra.admin import Session

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="many-sites-"))
    figures: dict[str, object] = {"sites": args.sites, "rounds": args.rounds,
                                  "procs": args.procs, "machine": machine_info()}  # fmt: skip
    server: subprocess.Popen[str] | None = None
    loaders: list[Loader] = []
    try:
        reused = provisioned(work, args.sites) if args.workdir else None
        kits, fed_port, admin_port, provision_s = reused or provision_many(work, args.sites)
        figures["provision_s"] = round(provision_s, 2) if reused is None else "reused"
        say(f"provisioned {args.sites} sites in {provision_s:.1f} s")
        server_kit = kits[SERVER]
        server = spawn(
            ["fedra.runtime.server_parent", "--kit", str(server_kit)],
            server_kit / "stderr.txt",
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(admin_port) and port_open(fed_port), 60, "the server ports")
        sampler = Sampler(server.pid)
        sampler.start()
        idle_rss = psutil.Process(server.pid).memory_info().rss
        site_kits = [kits[site_name(i)] for i in range(args.sites)]
        started = time.perf_counter()
        loaders = start_loaders(site_kits, args.procs, work)
        with Session.connect(kits[LEAD], timeout=30.0) as session:

            def all_listed() -> bool:
                check_alive(server, loaders)
                return len(session.sites_status().sites) == args.sites

            wait_for(all_listed, args.connect_timeout, f"{args.sites} sites to connect")
            figures["connect_s"] = round(time.perf_counter() - started, 2)
            say(f"{args.sites} sites connected in {figures['connect_s']} s")
            process = psutil.Process(server.pid)
            before = cpu_seconds(server.pid)
            idle_started = time.perf_counter()
            time.sleep(args.idle)  # the sites only heartbeat meanwhile
            idle = time.perf_counter() - idle_started
            spent = cpu_seconds(server.pid) - before
            interval = beat_interval(server_kit)
            beats = args.sites * idle / interval
            figures["idle"] = {
                "seconds": round(idle, 1),
                "server_cpu_s": round(spent, 3),
                "server_cpu_share": round(spent / idle, 4),
                "heartbeat_interval_s": round(interval, 2),
                "cpu_ms_per_heartbeat": round(1000 * spent / beats, 3) if beats else None,
                "threads": process.num_threads(),
                "fds": process.num_fds(),
                "rss_mib": round(process.memory_info().rss / MiB, 1),
                "rss_before_sites_mib": round(idle_rss / MiB, 1),
            }
            say(f"idle with {args.sites} sites: {figures['idle']}")
            job_started = time.perf_counter()
            cpu_before = {
                "server": before + spent,
                **{f"load-{i}": cpu_seconds(loader.proc.pid) for i, loader in enumerate(loaders)},
            }
            job_id = run_job(session, work, args.sites, args.rounds, args.job_timeout)
            figures["job_s"] = round(time.perf_counter() - job_started, 2)
            figures["job_cpu_s"] = {
                "server": round(cpu_seconds(server.pid) - cpu_before["server"], 2),
                "server_job": round(sampler.job_cpu, 2),
                **{f"load-{i}": round(cpu_seconds(loader.proc.pid) - cpu_before[f"load-{i}"], 2)
                   for i, loader in enumerate(loaders)},
            }  # fmt: skip
        sampler.stop()
        job_ws = server_kit / "store" / "jobs" / job_id / "workspace"
        log_text = (job_ws / "server_job.log").read_text(errors="replace")
        parsed = parse_rounds(log_text)
        rounds = [r.seconds for r in parsed]
        figures["round_s"] = rounds
        figures["server_cpu_per_round_s"] = [
            round(sampler.cpu_between(r.sent, r.done), 2) for r in parsed
        ]
        later = rounds[1:] or rounds
        figures["median_round_s"] = round(statistics.median(later), 3) if later else None
        figures["final_model"] = check_final(job_ws, args.rounds)
        figures["server"] = {
            "peak_rss_mib": round(sampler.peak_rss / MiB, 1),
            "hwm_mib": round(vm_hwm(server.pid) / MiB, 1),
            "peak_threads": sampler.peak_threads,
            "peak_fds": sampler.peak_fds,
        }
        figures["server_job"] = {
            "peak_rss_mib": round(sampler.peak_job_rss / MiB, 1),
            "hwm_mib": round(sampler.job_hwm / MiB, 1),
        }
    finally:
        figures["load"] = [loader.stop() for loader in loaders]
        if server is not None:
            end_group(server)
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def beat_interval(server_kit: Path) -> float:
    """Seconds between two heartbeats of a site: the sites' kits' ``heartbeat_interval`` (5 s,
    ``fedra.core.kitfile.SiteFile``) or the longer one the server asks for in its Welcome."""
    from fedra.runtime.config import ServerKit
    from fedra.runtime.server_sites import heartbeat_interval

    kit = ServerKit.load(server_kit)
    return max(5.0, heartbeat_interval(kit.max_connections, kit.heartbeat_timeout) or 0.0)


def check_alive(server: subprocess.Popen[str], loaders: Sequence[Loader]) -> None:
    """Fail when the server or a load process has exited."""
    if server.poll() is not None:
        raise SystemExit(f"the server parent exited with code {server.returncode}")
    for loader in loaders:
        if loader.proc.poll() is not None:
            raise SystemExit(f"a load process exited with code {loader.proc.returncode}")


def say(text: str) -> None:
    """One progress line on stderr."""
    print(f"[many_sites] {text}", file=sys.stderr, flush=True)


def report(figures: dict[str, object]) -> str:
    """The figures as a few readable lines, with the issue's targets."""
    server = figures.get("server") or {}
    assert isinstance(server, dict)
    median = figures.get("median_round_s")
    peak = server.get("peak_rss_mib", 0)
    lines = [
        f"sites: {figures['sites']} ({figures['procs']} load processes), "
        f"rounds: {figures['rounds']}",
        f"provisioning: {figures.get('provision_s')} s; all sites connected in "
        f"{figures.get('connect_s')} s",
        f"idle (heartbeats only): {json.dumps(figures.get('idle'))}",
        f"s/round: {figures.get('round_s')} (median of rounds 2..: {median}; target <= "
        f"{TARGET_ROUND_S} s: {'met' if median and median <= TARGET_ROUND_S else 'missed'})",
        f"server parent: peak RSS {peak} MiB (VmHWM {server.get('hwm_mib')} MiB; target <= "
        f"{TARGET_SERVER_RSS // MiB} MiB: {'met' if peak <= TARGET_SERVER_RSS / MiB else 'missed'})"
        f", peak threads {server.get('peak_threads')}, peak fds {server.get('peak_fds')}",
        f"server job: {json.dumps(figures.get('server_job'))}",
        f"server parent CPU seconds in each round: {figures.get('server_cpu_per_round_s')}",
        f"job: {figures.get('job_s')} s from submit to finished; CPU seconds meanwhile: "
        f"{json.dumps(figures.get('job_cpu_s'))}",
        f"final model: {figures.get('final_model')}",
        f"load processes: {json.dumps(figures.get('load'))}",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.many_sites",
        description="One real server parent and N provisioned sites over mutual-TLS gRPC "
        "(issue 16): connect time, s/round of a 3x3 FedAvg job, server memory, threads, fds.",
    )
    parser.add_argument("--sites", type=int, default=1000, help="sites (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (default 3)")
    parser.add_argument("--procs", type=int, default=4, help="load processes (default 4)")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds of heartbeats only (default 10)"
    )
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--job-timeout", type=float, default=600.0)
    parser.add_argument("--workdir", help="keep the kits here (default: a temporary folder)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary work folder (and print it)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    figures = run(args)
    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
