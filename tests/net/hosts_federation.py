"""A federation across the hosts of a bed: an overseer, one or more servers, sites, an admin.

Each participant runs in a host of its own with its own name and address; the kits come from
a ``project.yml`` that names the overseer and the servers by their host names
(``server1.fedra.test`` …), so the certificates are issued for those names and every
participant resolves them through the bed's hosts files. With several servers they share one
SQLite job store folder: the hosts of a bed share one kernel and file system, which is what
makes SQLite's locks safe here (across real machines it must be PostgreSQL, docs/ha.md).

The admin's questions go through one long-lived process in the admin's host
(:mod:`tests.net.admin_agent`). Waits poll a condition against a deadline and fail with what
they saw and the tails of every participant's log. Used by ``tests/net/test_*.py``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.netbed import Link, NetBed
from fedra.job import FedJob
from fedra.provision import load_project, provision
from tests.e2e.conftest import read
from tests.e2e.ha_federation import FAST
from tests.e2e.jobs import open_to_job_processes
from tests.net.conftest import MakeBed, readline

ADMIN = "admin@central.org"
SITES = ("site-1", "site-2")
MODULES = {
    "overseer": ["-m", "fedra.cli", "overseer", "start"],
    "server": ["-m", "fedra.runtime.server_parent"],
    "site": ["-m", "fedra.runtime.site_parent"],
}
#: Lines of each log shown when a wait fails.
TAIL = 40

# Site i (0-based) adds i+1 to every weight and reports num_samples = i+1, as the e2e
# arithmetic job does, so each round's global model is a closed form of the sites counted in
# it. ``holds=site-2:2,site-1:3`` makes a site wait in that round, once it has the task,
# until the file ``open-<site>-<round>`` exists (it writes ``<site>-<round>.waiting`` first).
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import fedra
    import fedra.client as flare

    opts = dict(a.split("=", 1) for a in sys.argv[1:])
    marks = Path(opts["marks"])
    holds = {h for h in opts.get("holds", "").split(",") if h}
    flare.init()
    site, index = flare.get_site_name(), flare.get_site_index()
    while flare.is_running():
        model = flare.receive()
        params = model.params
        if not flare.is_train():
            flare.send(fedra.FLModel(metrics={"mean": float(params["w"].mean())}))
            continue
        hold = f"{site}-{model.current_round}"
        if f"{site}:{model.current_round}" in holds:
            (marks / f"{hold}.waiting").write_text(str(os.getpid()))
            while not (marks / f"open-{hold}").exists():
                time.sleep(0.05)
        with open(marks / f"{site}.answers", "a") as answers:
            answers.write(f"{model.current_round}\\n")
        flare.send(fedra.FLModel(params={"w": params["w"] + (index + 1)},
                                 metrics={"mean": float(params["w"].mean())},
                                 meta={"num_samples": index + 1}))
    """
)


def round_gain(sites: Sequence[str]) -> float:
    """What one FedAvg round of the job adds to every weight when ``sites`` are counted."""
    weights = [float(SITES.index(s) + 1) for s in sites]
    return sum(w * w for w in weights) / sum(weights)


def expected_w(rounds: Sequence[dict[str, object]]) -> float:
    """Every weight of the final model, from the sites each recorded training round counted."""
    training = [r for r in rounds if r.get("workflow") == "FedAvg"]
    return sum(round_gain(list(r["sites"])) for r in training)  # type: ignore[call-overload]


def net_job(
    folder: Path,
    marks: Path,
    *,
    rounds: int,
    min_clients: int = 2,
    wait_after_min: float = 30.0,
    task_timeout: float = 0.0,
    holds: Sequence[str] = (),
) -> Path:
    """Export the arithmetic FedAvg job (see :data:`SCRIPT`) to ``folder``."""
    src = folder.parent / (folder.name + "-src")
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.py").write_text(SCRIPT)
    np.savez(src / "init.npz", w=np.zeros(4))
    open_to_job_processes(marks)
    job = FedJob(folder.name, min_clients=min_clients)
    job.add_workflow(
        "FedAvg",
        num_rounds=rounds,
        min_clients=min_clients,
        wait_time_after_min_received=wait_after_min,
        task_timeout=task_timeout,
    )
    job.set_persistor(initial_npz="init.npz", key_metric="mean")
    args = [f"marks={marks}", f"holds={','.join(holds)}"]
    job.add_executor("ScriptExecutor", script="train.py", args=args)
    job.add_file(src / "train.py").add_file(src / "init.npz")
    job.export(folder)
    return folder


class AdminAgent:
    """The :mod:`tests.net.admin_agent` process in the admin's host."""

    def __init__(self, bed: NetBed, kit: Path) -> None:
        argv = [sys.executable, "-m", "tests.net.admin_agent", "--kit", str(kit)]
        self.proc = bed.popen(
            "admin", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._bed = bed
        self.last_error = ""
        assert self._line(60) == {"ok": True, "value": "ready"}

    def _line(self, timeout: float) -> dict[str, object]:
        line = readline(self.proc, timeout)
        if not line:
            raise AssertionError(f"the admin agent did not answer (exit {self.proc.poll()})")
        reply: dict[str, object] = json.loads(line)
        return reply

    def ask(self, op: str, **args: str) -> object:
        """The answer's value; None (and :attr:`last_error`) when the request failed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self._line(120)
        if not reply["ok"]:
            self.last_error = str(reply["error"])
            return None
        return reply["value"]

    def close(self) -> None:
        """End the agent."""
        self._bed.end(self.proc)


@dataclass
class HostsFederation:
    """The kits of a project provisioned for a bed, and the processes started from them.

    ``kits`` and ``procs`` are keyed by participant: the bed host it was provisioned for
    (``"server1"``, ``"site-1"`` …; the admin is ``"admin"``). ``where`` says which host each
    runs on now (a server's kit may be started on another host)."""

    bed: NetBed
    root: Path
    kits: dict[str, Path]
    servers: tuple[str, ...]
    store: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    _admin: AdminAgent | None = None

    # -- processes ---------------------------------------------------------------------------
    def start(self, name: str, host: str | None = None) -> None:
        """Start participant ``name`` from its kit, on its own host or on ``host``."""
        kind = "server" if name in self.servers else "site" if name in SITES else name
        kit = self.kits[name]
        argv = [sys.executable, *MODULES[kind], "--kit", str(kit)]
        host = host or name
        with open(kit / "stderr.txt", "ab") as stderr:
            self.procs[name] = self.bed.popen(host, argv, stdout=subprocess.DEVNULL, stderr=stderr)
        self.where[name] = host

    def stop(self, name: str) -> None:
        """End participant ``name`` (SIGTERM, then SIGKILL, to its process group)."""
        self.bed.end(self.procs.pop(name))

    def close(self) -> None:
        """End everything this federation started: the admin, sites, servers, overseer."""
        if self._admin is not None:
            self._admin.close()
        for name in [*SITES, *self.servers, "overseer"]:
            if name in self.procs:
                self.stop(name)

    @property
    def admin(self) -> AdminAgent:
        """The admin's agent, started on first use."""
        if self._admin is None:
            self._admin = AdminAgent(self.bed, self.kits["admin"])
        return self._admin

    def move(self, server: str, host: str) -> Path:
        """Provision the project again with ``server`` on ``host`` (its name stays; its
        ``host`` becomes ``host``'s name): the new kit, which replaces the old one here."""
        project = self.root / "project-moved.yml"
        project.write_text(project_yaml(self.bed, self.servers, self.store, {server: host}))
        made = provision(load_project(project), self.root / "workspace", python=sys.executable)
        self.kits[server] = made.kits[self.bed.fqdn(server)]
        return self.kits[server]

    # -- what is seen ------------------------------------------------------------------------
    def log(self, name: str) -> str:
        """Participant ``name``'s log.txt and stderr."""
        return read(self.kits[name] / "log.txt") + read(self.kits[name] / "stderr.txt")

    def tails(self) -> str:
        """The last lines of every participant's log, for a failure message."""
        parts = []
        for name in self.kits:
            lines = self.log(name).splitlines()[-TAIL:]
            parts.append(f"--- {name} (on {self.where.get(name, '-')})\n" + "\n".join(lines))
        return "\n".join(parts)

    def check_alive(self) -> None:
        """Fail, with the logs, when a started process has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited {proc.returncode}\n{self.tails()}")

    def until(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        """Poll ``condition`` (every 0.2 s, processes checked alive) until it is true; fail
        after ``timeout`` s with ``what``, the admin's last error and the logs' tails."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if condition():
                return
            if time.monotonic() > deadline:
                error = self._admin.last_error if self._admin else ""
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}"
                    f" (admin's last error: {error or 'none'})\n{self.tails()}"
                )
            time.sleep(0.2)  # polling other processes against the deadline

    def hot(self) -> str | None:
        """The server the overseer names hot, by participant (None: none, or unreachable)."""
        state = self.admin.ask("overseer")
        if not isinstance(state, dict) or state["hot"] is None:
            return None
        return next(s for s in self.servers if self.bed.fqdn(s) == state["hot"])

    def serving(self, name: str) -> bool:
        """Whether server ``name`` says it is hot now (from its log)."""
        text = read(self.kits[name] / "log.txt")
        return text.rfind("this server is hot now") > text.rfind("stepping down")

    def sites(self) -> list[str] | None:
        """The sites the hot server lists as connected (None: no answer)."""
        listed = self.admin.ask("sites")
        return list(listed) if isinstance(listed, list) else None

    def job(self, job_id: str) -> dict[str, object]:
        """``{"status", "rounds"}`` of a job (``{}`` while no server answers)."""
        info = self.admin.ask("job", job_id=job_id)
        return info if isinstance(info, dict) else {}

    def rounds_done(self, job_id: str) -> int:
        """Training rounds the job has recorded."""
        rounds = self.job(job_id).get("rounds") or []
        return len([r for r in rounds if r.get("workflow") == "FedAvg"])  # type: ignore[union-attr]

    def wait_ready(self, sites: Sequence[str] = SITES, timeout: float = 90.0) -> str:
        """Until a server is hot, serving, and lists exactly ``sites``; its name."""

        def ready() -> bool:
            hot = self.hot()
            return hot is not None and self.serving(hot) and self.sites() == sorted(sites)

        self.until(ready, timeout, f"a hot server with {list(sites)} connected")
        return str(self.hot())

    def finish(self, job_id: str, timeout: float = 180.0) -> dict[str, object]:
        """Until the job completes (failing at once on any other final status); its record."""

        def done() -> bool:
            status = str(self.job(job_id).get("status", ""))
            assert not status.startswith("FINISHED:") or status == "FINISHED:COMPLETED", (
                f"job {job_id}: {status}\n{self.tails()}"
            )
            return status == "FINISHED:COMPLETED"

        self.until(done, timeout, f"job {job_id} to complete")
        return self.job(job_id)

    def final_w(self, job_id: str) -> list[float]:
        """The job's final model (downloaded through the admin)."""
        dest = self.root / f"download-{job_id}"
        w = self.admin.ask("final", job_id=job_id, dest=str(dest))
        assert isinstance(w, list), f"download failed: {self.admin.last_error}\n{self.tails()}"
        return [float(x) for x in w]


@contextlib.contextmanager
def job_root() -> Iterator[Path]:
    """A temporary folder the sites' job processes (a user of their own under root) can
    reach, removed afterwards. Not under pytest's /tmp/pytest-of-root, which every pytest
    session started by root meanwhile sets back to mode 0700."""
    folder = Path(tempfile.mkdtemp(prefix="fedra-net-"))
    try:
        open_to_job_processes(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def project_yaml(
    bed: NetBed, servers: Sequence[str], store: Path | None, moved: dict[str, str] | None = None
) -> str:
    """project.yml (as JSON, which YAML reads) naming the overseer and servers by host name;
    ``moved``: servers that run on another host than their name (server → host), whose
    ``host`` is then that host's name (the address everyone connects to, and a name of the
    server's certificate besides its own)."""
    participants: list[dict[str, object]] = [
        {"name": bed.fqdn("overseer"), "type": "overseer", "org": "central", "port": 8443}
    ]
    for server in servers:
        entry: dict[str, object] = {
            "name": bed.fqdn(server),
            "type": "server",
            "org": "central",
            "fed_learn_port": 8002,
            "admin_port": 8003,
            "enable_byoc": True,
        }
        if store is not None:
            entry["job_store"] = {"backend": "sqlite", "path": str(store)}
        if moved and server in moved:
            entry["host"] = bed.fqdn(moved[server])
        participants.append(entry)
    for index, site in enumerate(SITES):
        participants.append(
            {"name": site, "type": "client", "org": f"hospital-{index}", "enable_byoc": True}
        )
    participants.append({"name": ADMIN, "type": "admin", "org": "central", "role": "project_admin"})
    project = {"api_version": 1, "name": "net-faults", "participants": participants}
    return json.dumps(project, indent=1)


def hosts_federation(
    make_bed: MakeBed,
    root: Path,
    *,
    servers: Sequence[str] = ("server1",),
    extra_hosts: Sequence[str] = (),
    link: Link | None = None,
    settings: dict[str, float] | None = None,
    shared_store: bool = False,
) -> HostsFederation:
    """A bed with a host per participant (and ``extra_hosts``), and the project's kits for
    it: nothing is started. Several ``servers`` share one job store (high availability), as
    one server does with ``shared_store`` (so that its kit may be replaced)."""
    hosts = ["overseer", *servers, *SITES, "admin", *extra_hosts]
    bed = make_bed(hosts, link)
    open_to_job_processes(root)
    store = root / "shared-store" if len(servers) > 1 or shared_store else None
    if store is not None:
        store.mkdir()
    project = root / "project.yml"
    project.write_text(project_yaml(bed, servers, store))
    kits = provision(load_project(project), root / "workspace", python=sys.executable).kits
    (kits[bed.fqdn("overseer")] / "local" / "overseer.json").write_text(
        json.dumps(settings or FAST)
    )
    names = {"overseer": bed.fqdn("overseer"), "admin": ADMIN}
    names.update({s: bed.fqdn(s) for s in servers})
    by_host = {p: kits[names.get(p, p)] for p in ["overseer", *servers, *SITES, "admin"]}
    return HostsFederation(bed, root, by_host, tuple(servers), store=store)


def start_federation(fed: HostsFederation) -> str:
    """Start the overseer, the first server (hot), the other servers and the sites; wait
    until the first is hot with every site connected; its name."""
    first, *others = fed.servers
    fed.start("overseer")
    fed.start(first)
    fed.until(lambda: fed.serving(first), 60, f"{first} hot")
    for name in [*others, *SITES]:
        fed.start(name)
    return fed.wait_ready()


def opened(marks: Path, hold: str) -> None:
    """Let a held site go on (``hold`` as in ``holds``: ``site-2:2``)."""
    site, round_num = hold.split(":")
    (marks / f"open-{site}-{round_num}").write_text("open")


def waiting(marks: Path, hold: str) -> bool:
    """Whether the site of ``hold`` waits in that round (it has the round's task)."""
    site, round_num = hold.split(":")
    return (marks / f"{site}-{round_num}.waiting").exists()
