"""A load process of ``bench.many_sites``: many provisioned sites over real mutual-TLS gRPC.

Run by ``bench.many_sites`` (``python -m bench.many_sites_load --kits K1,K2,...``), one
process per slice of the sites. Each site is a :class:`SimSite`: it connects with its own
provisioned certificate through :func:`fedra.transport.connect` (the site parent's client),
sends the site parent's Hello (resources from its kit's ``SiteResourceBook``), heartbeats at
its kit's ``heartbeat_interval``, or the longer one the server's Welcome asks for, as a
site parent does (one thread of the process sends the heartbeats of all its
sites, each site at its own phase), answers the server's requests with the site parent's own
:class:`fedra.runtime.site_requests.SiteDesk` (``reserve``, ``free``, ``sys_info`` ...), and
stands in for the site job process of a 3x3 FedAvg job:

* ``start_job``: the archive must be there and name this site; no signature check, no
  unpacking, no process: the site answers ``job_state started`` at once (a real site
  answers after starting the job's process) and allocates the job's resources;
* ``task``: the result is the task's params + 1 with ``num_samples`` = the site's index in
  the job + 1 (what ``bench/job_files/bench_train.py`` returns on a real site); results
  are small, so no ``may_upload`` is needed (a real site asks only above 1 MiB);
* ``end_job`` / ``abort_job``: the job is gone from the heartbeats; its resources are freed.

Every message is decoded and encoded with :mod:`fedra.protocol` (the kinds a site receives,
``TO_SITE``). A lost connection is reconnected after a short backoff, as a site parent does.
The process prints JSON lines on stdout: ``ready`` once every site connected once, then
``stats`` when it is told to stop (a line ``stop`` on stdin, or stdin closed).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedra.core import FedraError, FLModel
from fedra.pki import TlsFiles
from fedra.protocol import (
    TO_SITE,
    AbortJob,
    BadMessage,
    EndJob,
    Heartbeat,
    Hello,
    JobState,
    Message,
    Request,
    Result,
    ResultRefused,
    StartJob,
    Task,
    Welcome,
    decode,
    encode,
    model_zip,
)
from fedra.runtime.config import SiteKit
from fedra.runtime.site_requests import SiteDesk
from fedra.runtime.site_resources import SiteResourceBook, load_site_resources
from fedra.transport import ChannelClosed, Connection, connect
from fedra.wire import Envelope

#: Connections a load process opens at the same time.
CONNECTING = 8
BACKOFF_S = 0.5


class Counters:
    """What the sites of this process did (``lock`` guards every field)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.heartbeats = 0
        self.tasks = 0
        self.requests = 0
        self.refused = 0
        self.errors: list[str] = []

    def add(self, name: str, count: int = 1) -> None:
        """Count ``count`` more of ``name``."""
        with self.lock:
            setattr(self, name, getattr(self, name) + count)

    def error(self, text: str) -> None:
        """Keep the first few errors for the report."""
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(text[:300])

    def as_dict(self) -> dict[str, object]:
        """The counters as JSON."""
        with self.lock:
            return {k: v for k, v in vars(self).items() if k != "lock"}


class SimSite:
    """One provisioned site: its connection, its jobs, its answers (see the module)."""

    def __init__(self, root: Path, counters: Counters) -> None:
        self.kit = SiteKit.load(root)
        self.tls = TlsFiles.in_dir(self.kit.startup, "client").load()
        self.resources = SiteResourceBook(self.kit.name, load_site_resources(root))
        self.desk = SiteDesk(self.kit.name, root, self.resources, self.running, self._no_stop)
        self.counters = counters
        self.lock = threading.Lock()
        #: Running jobs -> the index of this site among the job's sites.
        self.jobs: dict[str, int] = {}
        self.conn: Connection | None = None
        self.next_beat = 0.0
        #: Seconds between heartbeats: the kit's, or longer when the server's Welcome asks.
        self.beat_every = self.kit.heartbeat_interval
        self.ever_connected = threading.Event()

    @property
    def name(self) -> str:
        """The site's name (its certificate's CN)."""
        return self.kit.name

    def running(self) -> list[str]:
        """The jobs this site runs now."""
        with self.lock:
            return sorted(self.jobs)

    def _no_stop(self, code: int) -> None:
        self.counters.error(f"{self.name}: the server asked it to stop ({code}): ignored")

    # -- the connection -------------------------------------------------------------------
    def run(self, stopping: threading.Event, connecting: threading.Semaphore) -> None:
        """Connect, serve, reconnect after a loss; until ``stopping``."""
        while not stopping.is_set():
            ca, cert, key = self.tls
            try:
                with connecting:
                    conn = connect(
                        self.kit.target,
                        ca_pem=ca,
                        cert_pem=cert,
                        key_pem=key,
                        server_name=self.kit.server_name,
                        timeout=30.0,
                    )
            except FedraError as exc:
                self.counters.add("connect_failures")
                self.counters.error(f"{self.name}: {exc}")
                stopping.wait(BACKOFF_S * random.uniform(1.0, 2.0))
                continue
            self.counters.add("connects")
            self._serve(conn, stopping)
            if not stopping.is_set():
                self.counters.add("disconnects")
                stopping.wait(BACKOFF_S * random.uniform(1.0, 2.0))

    def _serve(self, conn: Connection, stopping: threading.Event) -> None:
        try:
            hello = Hello(site=self.name, resources=self.resources.report())
            conn.send(encode(hello))
            self.beat_every = self.kit.heartbeat_interval
            self.next_beat = time.monotonic() + self.kit.heartbeat_interval * random.random()
            self.conn = conn
            self.ever_connected.set()
            while not stopping.is_set():
                env = conn.recv()
                for answer in self.answer(env):
                    conn.send(answer)
        except (ChannelClosed, FedraError, OSError) as exc:
            if not stopping.is_set():
                self.counters.error(f"{self.name}: lost the connection: {exc}")
        finally:
            self.conn = None
            conn.close()

    def heartbeat(self, now: float) -> None:
        """Send a heartbeat when one is due (the site parent's heartbeat message)."""
        conn = self.conn
        if conn is None or now < self.next_beat:
            return
        self.next_beat = now + self.beat_every
        beat = Heartbeat(jobs=tuple(self.running()), resources=self.resources.report())
        try:
            conn.send(encode(beat))
        except (ChannelClosed, FedraError, OSError):
            return
        self.counters.add("heartbeats")

    # -- the site's answers ---------------------------------------------------------------
    def answer(self, env: Envelope) -> list[Envelope]:
        """What this site sends back for one message of the server."""
        try:
            message = decode(env, TO_SITE)
        except BadMessage as exc:
            self.counters.error(f"{self.name}: malformed {env.kind!r}: {exc}")
            return []
        replies = self._answer(message, env.model)
        return [encode(m, model) for m, model in replies]

    def _answer(self, message: Message, model: FLModel | None) -> list[tuple[Message, object]]:
        match message:
            case Welcome(heartbeat_interval=asked) if asked is not None:
                self.beat_every = max(self.kit.heartbeat_interval, asked)  # as a site parent
            case StartJob(job_id=job_id, sites=sites):
                if model_zip(model) is None or self.name not in sites:
                    state = JobState(job_id=job_id, state="failed", detail="bad start_job")
                    return [(state, None)]
                self.resources.allocate(job_id, {})
                with self.lock:
                    self.jobs[job_id] = sites.index(self.name)
                return [(JobState(job_id=job_id, state="started"), None)]
            case Task():
                self.counters.add("tasks")
                return [self._result(message, model)]
            case EndJob(job_id=job_id) | AbortJob(job_id=job_id):
                with self.lock:
                    self.jobs.pop(job_id, None)
                self.resources.free(job_id)
            case Request():
                self.counters.add("requests")
                reply = self.desk.answer(message)
                return [] if reply is None else [(reply, None)]
            case ResultRefused(error=error):
                self.counters.add("refused")
                self.counters.error(f"{self.name}: result refused: {error}")
        return []

    def _result(self, task: Task, model: FLModel | None) -> tuple[Message, object]:
        """The site job's answer: params + 1, num_samples = index + 1 (or why not)."""
        with self.lock:
            index = self.jobs.get(task.job_id)
        fields = {"job_id": task.job_id, "task_id": task.task_id, "task_name": task.task_name}
        if index is None:
            why = f"job {task.job_id} is not running here"
            return Result(**fields, site=self.name, error=why), None
        params = (model.params if model is not None else None) or {
            "weights": np.zeros((3, 3), dtype=np.float32)
        }
        updated = FLModel(
            params={k: v + 1 for k, v in params.items()}, meta={"num_samples": index + 1}
        )
        return Result(**fields, site=self.name), updated


def _beat_all(sites: Sequence[SimSite], stopping: threading.Event) -> None:
    """Each site's heartbeat at its kit's interval, each at its own phase."""
    while not stopping.wait(0.05):
        now = time.monotonic()
        for site in sites:
            site.heartbeat(now)


def run(kits: Sequence[Path]) -> int:
    """Serve the sites of ``kits`` until told to stop on stdin."""
    counters = Counters()
    started = time.monotonic()
    sites = [SimSite(root, counters) for root in kits]
    loaded = time.monotonic() - started
    stopping = threading.Event()
    connecting = threading.Semaphore(CONNECTING)
    threads = [
        threading.Thread(target=s.run, args=(stopping, connecting), name=s.name, daemon=True)
        for s in sites
    ]
    for thread in threads:
        thread.start()
    threading.Thread(target=_beat_all, args=(sites, stopping), daemon=True).start()

    def report_ready() -> None:
        for site in sites:
            while not site.ever_connected.wait(1.0):
                if stopping.is_set():
                    return
        _emit({"event": "ready", "sites": len(sites), "load_s": loaded,
               "connect_s": time.monotonic() - started - loaded})  # fmt: skip

    threading.Thread(target=report_ready, daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stopping.set()
    for site in sites:
        conn = site.conn
        if conn is not None:
            conn.close()
    for thread in threads:
        thread.join(5.0)
    _emit({"event": "stats", **counters.as_dict()})
    return 0


_emit_lock = threading.Lock()


def _emit(record: dict[str, object]) -> None:
    with _emit_lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (started by ``bench.many_sites``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.many_sites_load")
    parser.add_argument("--kits", required=True, help="a file with one site kit folder a line")
    args = parser.parse_args(argv)
    kits = [Path(line) for line in Path(args.kits).read_text().splitlines() if line.strip()]
    return run(kits)


if __name__ == "__main__":
    raise SystemExit(main())
