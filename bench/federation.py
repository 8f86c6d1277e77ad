"""Federation benchmark: a real POC federation over gRPC + mutual TLS on localhost.

Run with ``.venv/bin/python -m bench.federation`` (about 1.5-3 minutes; ``--skip-big`` leaves
out the 100 MB and 1 GB models, about 15 s). It prepares a POC workspace in a temporary folder
on free ports, starts the server parent (SP) and two site parents as processes, each in a
session of its own (as ``tests/e2e`` does; all are ended by process group at the end, also on
failure), and submits FedAvg jobs built with :class:`fedra.job.FedJob` through the admin
:class:`fedra.admin.Session`:

* the site code is ``bench/job_files/federation_executor.py``, a plain ``Executor`` in
  ``custom/`` (no script): ``params + 1`` with ``num_samples = site index + 1`` and a
  ``bench_score`` metric that rises each round (``--key-metric`` makes it the persistor's
  ``key_metric``: best-model tracking on, ``best.npz`` written every round);
* the initial model is an ``.npz`` given to the persistor (``set_persistor(initial_npz=...)``):
  one 3x3 float32 array, or several float32 arrays for the big models (decimal sizes:
  100 MB = 10^8 bytes in 4 arrays, 1 GB = 10^9 bytes in 8; a job may hold at most 1 GiB
  unpacked, so 1 GB is the largest model that fits);
* bigger models (e.g. ``--sizes 4GB``), and every model with ``--generate``, are built by the
  server job instead: ``bench/job_files/zeros_persistor.py`` in ``custom/`` returns float32
  ``np.zeros`` of a layout given in the job (above 2 GiB one array of 5/8 of the model, 4 GB:
  2.5 GB + 3 x 0.5 GB). Before running, the memory and disk the biggest job needs are
  estimated and the run is refused when the machine has less (``--force`` runs anyway;
  ``--dry-run`` prints the plan and the estimate and exits). Every job's final model
  (``models/final.npz``) is checked weight by weight, 64 MiB at a time, against N rounds;
* FedAvg's final validation is **off** for the round figures (``final_validation=False``), so
  that the job is rounds only; one extra 5-round 3x3 job runs with the FedAvg defaults (final
  validation on) for the submit-to-finished time.

What is measured:

* **start to ready**: from starting the three processes to both sites listed by
  ``check_status("client")`` (and, on the way, to the admin port accepting TCP);
* **seconds per round**: the server job's (SJ's) own round records. The admin's
  ``get_job(...).run_info["rounds"]`` entries carry workflow/round/metrics but no duration
  (they are used when they do), so the benchmark reads the SJ's log
  (``<server>/store/jobs/<id>/workspace/server_job.log``): ``FedAvg round N/M: sent to 2
  sites`` (the broadcast begins) and ``FedAvg round N done in X s`` (after aggregation and
  saving ``round-NNN.npz``; the snapshot is written after it). ``s/round`` is the median of
  rounds 2..N (round 1 also waits for the sites' job processes to start);
* **per direction**: the executor writes when each task reached it and when its result left
  (``bench_marks.jsonl`` in each site's job folder; one machine, one clock). ``down`` = from
  "sent to" to the last site holding the model; ``up`` = from the first result leaving a site
  to "done" (so it includes folding both results in and writing ``round-NNN.npz``). Effective
  MB/s per direction = model bytes x 2 sites / that time; "both" = model bytes x 2 sites x 2
  directions / round seconds;
* **server peak RSS**: a thread samples the RSS of the SP and of the job's SJ (found as a child
  of the SP with psutil) every 50 ms; ``SP+SJ`` is the peak of their sum at the same sample.
  The SJ's ``VmHWM`` and the SP's (reset through ``/proc/<pid>/clear_refs`` before each job)
  are read too, so peaks between samples are not missed. The window is the whole job, from
  submit to finished. A job is aborted if the machine's available memory drops under 1 GiB;
* **CPU and page faults**: user/system seconds and minor page faults of every process of the
  federation over each job (``/proc/<pid>/stat``), and how fast this machine zero-fills fresh
  memory (every received model lands in a fresh zero-filled buffer).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.machine import machine_info
from bench.table import format_table, verdict
from fedra.admin import Session
from fedra.job import FedJob
from fedra.job.archive import MAX_JOB_BYTES
from fedra.poc import PocLayout, prepare
from fedra.serverapp.runstore import write_npz

REPO = Path(__file__).resolve().parents[1]
JOB_FILES = Path(__file__).resolve().parent / "job_files"
EXECUTOR = "federation_executor.TimedAddOneExecutor"
#: The persistor that builds the initial model in the server job (``--generate``, big sizes).
ZEROS_PERSISTOR = "zeros_persistor.ZerosPersistor"
MARKS_FILE = "bench_marks.jsonl"
SITES = 2
#: Best-model tracking on (``--key-metric``): the persistor's ``key_metric`` is BEST_METRIC.
KEY_METRIC = False
BEST_METRIC = "bench_score"
MB = 10**6
MiB = 2**20
SAMPLE_S = 0.05
#: A job is aborted when the machine's available memory falls below this (protects others).
MIN_AVAILABLE = 1 << 30
#: Arrays of a big model (float32 each).
BIG_ARRAYS = {100 * MB: 4, 1000 * MB: 8}
#: A generated model above this has one array above it (e.g. 4 GB: 2.5 GB + 3 x 0.5 GB).
TWO_GIB = 2**31
#: Bytes read at a time when the final model is checked.
CHECK_CHUNK = 64 * MiB
#: Resource estimate, in model sizes: the server (SP+SJ: the running sum, measured 1.04x for
#: 4 GB, plus room for frames), each site (its result, and its task mapped from disk) and the
#: disk (messages spooled on the way: the parked global model, and per site its task and result
#: at the site and its result at the server; the server also writes every round's model and
#: the final one, and the .npz path writes the model and the job).
SERVER_MODELS = 1.5
SITE_MODELS = 2
SPOOL_MODELS = 1
SPOOL_MODELS_PER_SITE = 3

#: Targets from the issue.
TARGET_ROUND_S = 0.050  # seconds per round, 3x3 model, 2 sites
TARGET_MBPS = 500.0  # effective MB/s per direction, big models
TARGET_RSS_RATIO = 3.0  # server peak RSS / model size

#: Figures quoted by the issue, measured earlier on this machine type.
COMPARISON = (
    "Flower 1.42 deployment mode (SuperLink + 2 SuperNodes, no TLS): about 6 s per round even "
    "for a 3x3 model.",
    "NVIDIA FLARE 2.9 POC: about 11 s from start to ready; 18-21 s from submit to finished for "
    "a 5-round 3x3 job (about 2 s per round); its server process peaked at 8-9x the model "
    "size with a 1 GB model.",
)


def fill_rate(nbytes: int = 512 * MiB) -> tuple[float, float]:
    """MB/s of ``bytearray(nbytes)`` (zero-filled: every page is touched), twice in a row.

    Every received model lands in such a fresh buffer (``fedra.transport``), so the rate at
    which this machine hands out fresh pages bounds the data path. On a VM whose memory is
    backed lazily by the host, the first figure (pages the guest has not touched lately) can
    be far below the second (pages just freed and reused).
    """
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        buffer = bytearray(nbytes)
        rates.append(nbytes / (time.perf_counter() - started) / MB)
        del buffer
    return rates[0], rates[1]


# -- the federation -----------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on localhost:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms until it holds; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Federation:
    """A prepared POC workspace and the processes started from it."""

    layout: PocLayout
    fed_port: int
    admin_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def prepare(cls, root: Path, sites: int) -> Federation:
        """Write a POC workspace with ``sites`` sites on two free ports."""
        fed_port, admin_port = free_port(), free_port()
        while admin_port == fed_port:
            admin_port = free_port()
        layout = prepare(root, sites, host="localhost", fed_port=fed_port, admin_port=admin_port)
        return cls(layout, fed_port, admin_port)

    def folder(self, name: str) -> Path:
        """A participant's kit folder ('server' or a site name)."""
        return self.layout.server if name == "server" else self.layout.site(name)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start the server parent ('server') or a site parent, in a session of its own."""
        module = "fedra.runtime.server_parent" if name == "server" else "fedra.runtime.site_parent"
        folder = self.folder(name)
        with open(folder / "stderr.txt", "ab") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "--kit", str(folder)],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def session(self, timeout: float = 15.0) -> Session:
        """An admin session with the POC admin kit."""
        return Session.connect(self.layout.admin, timeout=timeout)

    def stop_all(self) -> None:
        """End every process this federation started, by process group (TERM, then KILL).

        The server and the sites start their job processes in sessions of their own; any
        that outlive their parent are killed by their own process group at the end.
        """
        descendants: list[psutil.Process] = []
        for proc in self.procs.values():
            with contextlib.suppress(psutil.Error):
                descendants += psutil.Process(proc.pid).children(recursive=True)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name in list(self.procs):
            proc = self.procs.pop(name)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for child in descendants:
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    os.killpg(os.getpgid(child.pid), signal.SIGKILL)


@dataclass
class Startup:
    """How long the federation took to come up."""

    listening_s: float
    ready_s: float


def start_federation(fed: Federation) -> Startup:
    """Start the server and the sites at once; time until both sites are connected."""
    started = time.perf_counter()
    fed.start("server")
    for site in fed.layout.sites:
        fed.start(site)
    wait_for(lambda: port_open(fed.admin_port), 60, "the admin port")
    listening = time.perf_counter() - started
    wanted = sorted(fed.layout.sites)
    with fed.session() as session:

        def connected() -> bool:
            sites = session.sites_status().sites
            return sorted(s.name for s in sites) == wanted

        wait_for(connected, 60, f"sites {wanted} to connect")
    return Startup(listening, time.perf_counter() - started)


# -- memory sampling ----------------------------------------------------------------------
def vm_hwm(pid: int) -> int:
    """A process's peak RSS (``VmHWM``) in bytes, 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def reset_hwm(pid: int) -> bool:
    """Reset a process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def is_server_job(proc: psutil.Process) -> bool:
    """Whether ``proc`` is a server job process (``python -m fedra.runtime.server_job``)."""
    try:
        return "fedra.runtime.server_job" in proc.cmdline()
    except psutil.Error:
        return False


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_stat(pid: int) -> tuple[float, float, int] | None:
    """(user s, system s, minor page faults) of a process from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # Fields after the command: state(3) ... minflt(10) ... utime(14) stime(15), 1-based.
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS, int(fields[7])


@dataclass
class CpuUse:
    """CPU seconds and minor page faults of one group of processes during a job."""

    user_s: float = 0.0
    sys_s: float = 0.0
    minflt: int = 0

    def add(self, user: float, system: float, minflt: int) -> None:
        """Add one process's share."""
        self.user_s += user
        self.sys_s += system
        self.minflt += minflt


@dataclass
class Peaks:
    """Peak RSS figures of one job, in bytes."""

    sp_base: int = 0
    sp: int = 0
    sj: int = 0
    total: int = 0
    sp_hwm: int = 0
    sj_hwm: int = 0
    sites: int = 0
    samples: int = 0
    sj_seen: bool = False
    peak_at: float = 0.0
    cpu: dict[str, CpuUse] = field(default_factory=dict)
    federation: int = 0
    min_available: int = 0
    site_each: list[int] = field(default_factory=list)


class RssSampler(threading.Thread):
    """Samples the RSS of the SP, the SJ (a child of the SP) and the sites every 50 ms."""

    def __init__(self, sp_pid: int, site_pids: Sequence[int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.sp = psutil.Process(sp_pid)
        self.sites = [psutil.Process(pid) for pid in site_pids]
        self.peaks = Peaks()
        self._stop_event = threading.Event()
        self.low_memory = threading.Event()
        self._lock = threading.Lock()
        self._sj: psutil.Process | None = None
        # pid -> (role, stat at the start of the window, last stat seen)
        self._stats: dict[int, tuple[str, tuple[float, float, int], tuple[float, float, int]]] = {}

    def _track(self, role: str, pid: int) -> None:
        stat = proc_stat(pid)
        if stat is None:
            return
        if pid in self._stats:
            self._stats[pid] = (role, self._stats[pid][1], stat)
        else:
            start = (0.0, 0.0, 0) if role in ("SJ", "site job") else stat
            self._stats[pid] = (role, start, stat)

    def reset(self) -> None:
        """Start a new measurement window (before a job is submitted)."""
        with self._lock:
            self._sj = None
            self._stats = {}
            self.low_memory.clear()
            self.peaks = Peaks(min_available=int(psutil.virtual_memory().available))
            reset_hwm(self.sp.pid)
            rss = self._rss(self.sp)
            self.peaks.sp_base = rss
            self.peaks.sp = rss

    def take(self) -> Peaks:
        """The peaks since :meth:`reset`, with the SP's ``VmHWM`` read now."""
        with self._lock:
            self.peaks.sp_hwm = vm_hwm(self.sp.pid)
            cpu: dict[str, CpuUse] = {}
            for role, start, last in self._stats.values():
                use = cpu.setdefault(role, CpuUse())
                use.add(last[0] - start[0], last[1] - start[1], last[2] - start[2])
            self.peaks.cpu = cpu
            return self.peaks

    def stop(self) -> None:
        """End the sampling thread."""
        self._stop_event.set()
        self.join(5)

    @staticmethod
    def _rss(proc: psutil.Process) -> int:
        try:
            return int(proc.memory_info().rss)
        except psutil.Error:
            return 0

    def _find_sj(self) -> psutil.Process | None:
        if self._sj is not None and self._sj.is_running():
            return self._sj
        try:
            children = self.sp.children()
        except psutil.Error:
            return None
        self._sj = next((c for c in children if is_server_job(c)), None)
        return self._sj

    def _site_rss(self, site: psutil.Process) -> int:
        try:
            children = site.children(recursive=True)
        except psutil.Error:
            return 0
        self._track("site parent", site.pid)
        for child in children:
            self._track("site job", child.pid)
        return sum(self._rss(p) for p in [site, *children])

    def sample(self) -> None:
        """Take one sample and update the peaks."""
        with self._lock:
            sp = self._rss(self.sp)
            sj_proc = self._find_sj()
            sj = self._rss(sj_proc) if sj_proc is not None else 0
            peaks = self.peaks
            peaks.samples += 1
            peaks.sp = max(peaks.sp, sp)
            self._track("SP", self.sp.pid)
            if sj_proc is not None:
                self._track("SJ", sj_proc.pid)
                peaks.sj_seen = True
                peaks.sj = max(peaks.sj, sj)
                peaks.sj_hwm = max(peaks.sj_hwm, vm_hwm(sj_proc.pid))
            if sp + sj > peaks.total:
                peaks.total = sp + sj
                peaks.peak_at = time.time()
            site_rss = [self._site_rss(s) for s in self.sites]
            peaks.sites = max([peaks.sites, *site_rss])
            if len(peaks.site_each) != len(site_rss):
                peaks.site_each = [0] * len(site_rss)
            peaks.site_each = [max(a, b) for a, b in zip(peaks.site_each, site_rss, strict=True)]
            peaks.federation = max(peaks.federation, sp + sj + sum(site_rss))
            available = int(psutil.virtual_memory().available)
            peaks.min_available = min(peaks.min_available, available)
            if available < MIN_AVAILABLE:
                self.low_memory.set()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.wait(SAMPLE_S):
            self.sample()


# -- jobs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A model size given on the command line: ``3x3`` or ``100MB`` / ``1GB``."""

    label: str
    shape: tuple[int, ...] | None = None
    total_bytes: int = 0

    @property
    def big(self) -> bool:
        """Whether this is a big (byte-sized) model."""
        return self.shape is None


def parse_size(text: str) -> ModelSpec:
    """``"3x3"`` -> a shape; ``"100MB"``, ``"1GB"`` -> decimal byte sizes."""
    text = text.strip()
    if re.fullmatch(r"\d+(x\d+)*", text):
        return ModelSpec(text, shape=tuple(int(x) for x in text.split("x")))
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(MB|GB)", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 3x3, 100MB, 1GB")
    scale = MB if match.group(2).upper() == "MB" else 1000 * MB
    total = int(float(match.group(1)) * scale)
    if total < 4:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: at least one float32 (4 bytes)")
    return ModelSpec(text, total_bytes=total)


def spec_bytes(spec: ModelSpec) -> int:
    """The bytes a spec asks for (a shape: float32 elements x 4)."""
    if spec.shape is not None:
        return int(np.prod(spec.shape, dtype=np.int64)) * 4
    return spec.total_bytes


def server_built(spec: ModelSpec, generate: bool) -> bool:
    """Whether the server job builds the initial model (``--generate``, or too big for a job).

    A job may hold at most ``MAX_JOB_BYTES`` unpacked and the ``.npz`` path ships the initial
    model in the job, so bigger models are always built by the server (``ZerosPersistor``).
    """
    return generate or spec_bytes(spec) + MiB > MAX_JOB_BYTES


def model_layout(spec: ModelSpec, generated: bool) -> dict[str, tuple[int, ...]]:
    """Array name -> shape (float32) of the initial model.

    A shape gives one array ``weights``. Byte sizes shipped as ``.npz`` keep the historic
    layout (``BIG_ARRAYS``, else one array per 125 MB; rounded down to whole arrays). A
    generated model holds exactly the decimal bytes asked for (rounded down to float32): above
    2 GiB, one array of 5/8 of the model but at least just over 2 GiB (4 GB: 2.5 GB) and three
    arrays sharing the rest; otherwise ``BIG_ARRAYS`` or one array per 125 MB, at least 4.
    """
    if spec.shape is not None:
        return {"weights": spec.shape}
    elements = spec.total_bytes // 4
    if not generated:
        arrays = BIG_ARRAYS.get(spec.total_bytes, max(1, spec.total_bytes // (125 * MB)))
        return {f"layer{i}": (elements // arrays,) for i in range(arrays)}
    if elements > TWO_GIB // 4 + 3:
        big = min(max(elements * 5 // 8, TWO_GIB // 4 + 1), elements - 3)
        rest = elements - big
        counts = [big, rest // 3, rest // 3, rest - 2 * (rest // 3)]
    else:
        arrays = min(
            elements, BIG_ARRAYS.get(spec.total_bytes, max(4, elements // (125 * MB // 4)))
        )
        counts = [elements // arrays] * (arrays - 1)
        counts.append(elements - sum(counts))
    return {f"layer{i}": (count,) for i, count in enumerate(counts)}


def layout_bytes(layout: dict[str, tuple[int, ...]]) -> int:
    """Bytes of a float32 model of ``layout``."""
    return sum(int(np.prod(shape, dtype=np.int64)) * 4 for shape in layout.values())


def parse_sizes(text: str) -> list[ModelSpec]:
    """``"3x3,100MB,1GB"`` -> the model specs."""
    return [parse_size(part) for part in text.split(",") if part.strip()]


def write_model(layout: dict[str, tuple[int, ...]], path: Path) -> int:
    """Write the initial ``.npz`` (float32 zeros of ``layout``); return the model's bytes.

    Zeros from ``np.zeros`` are pages never written, so this does not grow the benchmark
    process. The job archive is deflated, so zeros also keep the job upload small: the model
    itself travels only in the rounds.
    """
    params = {name: np.zeros(shape, dtype=np.float32) for name, shape in layout.items()}
    with open(path, "wb") as handle:
        write_npz(handle, params)
    return sum(a.nbytes for a in params.values())


def build_job(
    folder: Path,
    name: str,
    rounds: int,
    npz: Path | None,
    final_validation: bool,
    layout: dict[str, tuple[int, ...]] | None = None,
) -> Path:
    """Export a FedAvg job for the sites with the timed executor.

    The initial model is ``npz`` (shipped in the job), or, with ``npz=None``, float32 zeros of
    ``layout`` built by the server job (``bench/job_files/zeros_persistor.py`` in custom/).
    """
    job = FedJob(name, min_clients=SITES)
    # Best-model tracking (--key-metric): the executor reports BEST_METRIC, rising each round.
    tracking = {"key_metric": BEST_METRIC} if KEY_METRIC else {}
    job.add_workflow(
        "FedAvg", num_rounds=rounds, min_clients=SITES, final_validation=final_validation
    )
    job.add_executor(custom=EXECUTOR)
    job.add_file(JOB_FILES / "federation_executor.py")
    if npz is not None:
        job.set_persistor(initial_npz="initial.npz", **tracking)
        job.add_file(npz, "initial.npz")
    else:
        if layout is None:
            raise ValueError("build_job: give an initial .npz or a layout for the server")
        # FedJob.set_persistor names built-in classes only: a custom one is written as is.
        job.persistor = {
            "custom": ZEROS_PERSISTOR,
            "args": {"layout": {k: list(v) for k, v in layout.items()}, **tracking},
        }
        job.add_file(JOB_FILES / "zeros_persistor.py")
    job.export(folder)
    return folder


# -- checking the final model --------------------------------------------------------------
class FinalModelError(RuntimeError):
    """The final model of a job is not what FedAvg of "each site adds 1" gives."""


def check_final_model(
    path: Path, layout: dict[str, tuple[int, ...]], expected: float, rtol: float = 1e-6
) -> str:
    """Check every weight of the ``.npz`` at ``path`` against ``expected``; return a summary.

    Each site returns ``params + 1``, so whatever the weights, FedAvg's mean is ``params + 1``
    and after N rounds from zeros every weight is N. The file is read member by member and
    ``CHECK_CHUNK`` bytes at a time (never a whole array: a 4 GB model is checked in 64 MiB),
    and a wrong name, shape, dtype or value raises :class:`FinalModelError` naming the array
    (and the first wrong element). Weights may differ from N by ``rtol`` relative (a few
    float32 rounding steps, as a weighted mean may divide before adding).
    """
    if not path.is_file():
        raise FinalModelError(f"{path}: no final model was written")
    worst = 0.0
    elements = 0
    with zipfile.ZipFile(path) as archive:
        names = {n.removesuffix(".npy"): n for n in archive.namelist()}
        if sorted(names) != sorted(layout):
            raise FinalModelError(f"{path.name}: arrays {sorted(names)}, expected {sorted(layout)}")
        for name, shape in layout.items():
            with archive.open(names[name]) as member:
                version = np.lib.format.read_magic(member)
                header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                got_shape, _fortran, dtype = header(member)
                if tuple(got_shape) != tuple(shape) or dtype != np.dtype(np.float32):
                    raise FinalModelError(
                        f"{path.name}: array {name!r} is {dtype} {tuple(got_shape)}, "
                        f"expected float32 {tuple(shape)}"
                    )
                done = 0
                total = int(np.prod(shape, dtype=np.int64))
                while done < total:
                    want = min(CHECK_CHUNK // 4, total - done) * 4
                    raw = member.read(want)
                    if len(raw) != want:
                        raise FinalModelError(
                            f"{path.name}: array {name!r} ends after {done + len(raw) // 4} of "
                            f"{total} elements"
                        )
                    values = np.frombuffer(raw, dtype=np.float32)
                    off = np.abs(values - np.float32(expected))
                    bad = np.flatnonzero(~(off <= rtol * abs(expected)))
                    if bad.size:
                        first = int(bad[0])
                        raise FinalModelError(
                            f"{path.name}: array {name!r} element {done + first} is "
                            f"{float(values[first])!r}, expected {expected:g} (FedAvg of "
                            f"'each site adds 1' from zeros); {bad.size} wrong in elements {done}.."
                            f"{done + values.size - 1}"
                        )
                    worst = max(worst, float(off.max()))
                    done += values.size
                    del raw, values, off
                elements += total
    return f"ok: {elements} weights = {expected:g} (max |w - {expected:g}| {worst:.2g})"


# -- reading what a job did ---------------------------------------------------------------
LOG_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO fedra\.serverapp\.runner: "
    r"(?P<wf>.+?) round (?P<round>\d+)"
    r"(?:/\d+: sent to (?P<sites>\d+) sites| done in (?P<secs>[\d.]+) s)"
)


@dataclass
class Round:
    """One FedAvg round as the SJ's log and the sites' marks tell it."""

    round: int
    sent: float
    done: float
    seconds: float
    enter: list[float] = field(default_factory=list)
    exit: list[float] = field(default_factory=list)

    @property
    def down_s(self) -> float:
        """From the broadcast to the last site holding the model."""
        return max(self.enter) - self.sent if self.enter else float("nan")

    @property
    def first_down_s(self) -> float:
        """From the broadcast to the first site holding the model (one copy, one path)."""
        return min(self.enter) - self.sent if self.enter else float("nan")

    @property
    def up_s(self) -> float:
        """From the first result leaving a site to the end of the round."""
        return self.done - min(self.exit) if self.exit else float("nan")


def log_time(stamp: str) -> float:
    """A logging time stamp (local time, ms) as seconds since the epoch."""
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def parse_rounds(log_text: str, workflow: str = "FedAvg") -> list[Round]:
    """The rounds of ``workflow`` from a server job log."""
    sent: dict[int, float] = {}
    rounds: list[Round] = []
    for line in log_text.splitlines():
        match = LOG_LINE.match(line)
        if match is None or match.group("wf") != workflow:
            continue
        num = int(match.group("round"))
        when = log_time(match.group("ts"))
        if match.group("sites") is not None:
            sent[num] = when
        elif num in sent:
            rounds.append(Round(num, sent[num], when, float(match.group("secs"))))
    return rounds


def add_marks(rounds: list[Round], marks: Sequence[Path]) -> None:
    """Attach the sites' enter/exit times to the rounds."""
    by_round = {r.round: r for r in rounds}
    for path in marks:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            mark = json.loads(line)
            entry = by_round.get(int(mark["round"]))
            if entry is not None:
                entry.enter.append(float(mark["enter"]))
                entry.exit.append(float(mark["exit"]))


@dataclass
class JobResult:
    """Figures of one job."""

    label: str
    model_bytes: int
    rounds: list[Round]
    final_validation: bool
    wall_s: float
    server_s: float
    submit_s: float
    status: str
    peaks: Peaks
    rounds_have_seconds: bool
    generated: bool = False
    final_check: str = ""
    layout: dict[str, tuple[int, ...]] | None = None

    def later(self) -> list[Round]:
        """Rounds 2..N (round 1 alone when there is one)."""
        return self.rounds[1:] or self.rounds

    @property
    def round_s(self) -> float:
        """Median seconds per round over rounds 2..N (the SJ's own figure)."""
        return statistics.median(r.seconds for r in self.later())

    @property
    def between_s(self) -> float:
        """Median time from the end of a round to the next broadcast (the snapshot)."""
        gaps = [b.sent - a.done for a, b in itertools.pairwise(self.rounds)]
        return statistics.median(gaps) if gaps else float("nan")

    @property
    def down_s(self) -> float:
        """Median broadcast time over rounds 2..N."""
        return statistics.median(r.down_s for r in self.later())

    @property
    def first_down_s(self) -> float:
        """Median time for the model to reach the first site, over rounds 2..N."""
        return statistics.median(r.first_down_s for r in self.later())

    @property
    def up_s(self) -> float:
        """Median gather time (aggregation and saving included) over rounds 2..N."""
        return statistics.median(r.up_s for r in self.later())

    def mbps(self, seconds: float, directions: int = 1) -> float:
        """Effective MB/s: model bytes x sites x directions / ``seconds``."""
        return self.model_bytes * SITES * directions / seconds / MB


def run_job(
    fed: Federation,
    sampler: RssSampler,
    folder: Path,
    label: str,
    model_bytes: int,
    final_validation: bool,
    timeout: float,
    *,
    layout: dict[str, tuple[int, ...]] | None = None,
    num_rounds: int = 0,
    generated: bool = False,
    phase: Callable[[str], None] | None = None,
) -> JobResult:
    """Submit a job folder, wait for it, and gather its figures.

    With ``layout``, the final model (``models/final.npz`` of the job's workspace) is checked
    weight by weight against ``num_rounds`` (see :func:`check_final_model`) before the job is
    deleted. With ``phase``, a line is given to it on submit, after each round (from the SJ's
    log) and for the check, so that a long job shows what it does.
    """
    sampler.reset()
    sampler.sample()
    with fed.session() as session:
        started = time.perf_counter()
        job_id = session.submit_job(folder)
        submitted = time.perf_counter()
        deadline = submitted + timeout
        workspace = fed.layout.server / "store" / "jobs" / job_id / "workspace"
        if phase is not None:
            phase(f"{label}: submitted as {job_id} in {submitted - started:.1f} s")
        rounds_told = 0
        next_look = submitted + 1.0
        while True:
            record = session.get_job(job_id)
            if phase is not None and time.perf_counter() >= next_look:
                next_look = time.perf_counter() + 1.0
                rounds_told = tell_rounds(workspace, rounds_told, num_rounds, label, phase)
            if record.status.is_final:
                break
            if sampler.low_memory.is_set() or time.perf_counter() > deadline:
                session.abort_job(job_id)
                why = "low memory" if sampler.low_memory.is_set() else f"{timeout:.0f} s"
                raise RuntimeError(f"job {label} aborted: {why}")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        sampler.sample()
        peaks = sampler.take()
        recorded = (record.run_info or {}).get("rounds")
        entries = [
            r
            for r in (recorded if isinstance(recorded, list) else [])
            if isinstance(r, dict) and r.get("workflow") == "FedAvg"
        ]
    status = record.status.value
    if phase is not None:
        tell_rounds(workspace, rounds_told, num_rounds, label, phase)
        phase(f"{label}: {status} after {wall:.1f} s")
    if status != "FINISHED:COMPLETED":
        raise RuntimeError(f"job {label} ended {status}: {record}")
    rounds = parse_rounds((workspace / "server_job.log").read_text(errors="replace"))
    add_marks(rounds, [fed.layout.site(s) / "jobs" / job_id / MARKS_FILE for s in fed.layout.sites])
    if len(rounds) != len(entries):
        raise RuntimeError(f"job {label}: {len(entries)} rounds recorded, {len(rounds)} logged")
    have_seconds = bool(entries) and all("seconds" in r for r in entries)
    if have_seconds:  # the server's own round records, when they carry a duration
        for entry, parsed in zip(entries, rounds, strict=True):
            seconds = entry["seconds"]
            parsed.seconds = float(seconds) if isinstance(seconds, int | float) else float("nan")
    final_check = ""
    if layout is not None:
        if phase is not None:
            phase(f"{label}: checking the final model ({size_text(model_bytes)}, every weight "
                  f"= {num_rounds})")  # fmt: skip
        checked = time.perf_counter()
        final_check = check_final_model(workspace / "models" / "final.npz", layout, num_rounds)
        if phase is not None:
            phase(f"{label}: final model {final_check} in {time.perf_counter() - checked:.1f} s")
    # Free the disk: the job's models on the server, and the exported job folder.
    with fed.session() as session:
        session.delete_job(job_id)
    shutil.rmtree(folder, ignore_errors=True)
    return JobResult(
        label=label,
        model_bytes=model_bytes,
        rounds=rounds,
        final_validation=final_validation,
        wall_s=wall,
        server_s=record.duration_s,
        submit_s=submitted - started,
        status=status,
        peaks=peaks,
        rounds_have_seconds=have_seconds,
        generated=generated,
        final_check=final_check,
        layout=layout,
    )


def tell_rounds(
    workspace: Path, told: int, num_rounds: int, label: str, phase: Callable[[str], None]
) -> int:
    """Give ``phase`` a line for each round the SJ's log shows done after the first ``told``."""
    try:
        text = (workspace / "server_job.log").read_text(errors="replace")
    except OSError:
        return told
    rounds = parse_rounds(text)
    for entry in rounds[told:]:
        phase(f"{label}: round {entry.round}/{num_rounds} done in {entry.seconds:.1f} s")
    return max(told, len(rounds))


# -- report -------------------------------------------------------------------------------
def size_text(nbytes: int) -> str:
    """Bytes as a short decimal size."""
    if nbytes >= 1000 * MB:
        return f"{nbytes / (1000 * MB):.2f} GB"
    if nbytes >= MB:
        return f"{nbytes / MB:.0f} MB"
    return f"{nbytes} B"


@dataclass
class Report:
    """Everything one benchmark run measured."""

    machine: dict[str, str]
    startup: Startup | None = None
    jobs: list[JobResult] = field(default_factory=list)
    load_end: str = ""

    @property
    def targets(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) for each target the run covered."""
        out: list[tuple[str, str, bool]] = []
        for job in self.jobs:
            if job.final_validation:
                continue
            if job.model_bytes < MB:
                out.append((
                    f"{job.label}: <= {TARGET_ROUND_S * 1000:.0f} ms/round",
                    f"{job.round_s * 1000:.1f} ms",
                    job.round_s <= TARGET_ROUND_S,
                ))  # fmt: skip
                continue
            down, up = job.mbps(job.down_s), job.mbps(job.up_s)
            out.append((
                f"{job.label}: >= {TARGET_MBPS:.0f} MB/s down (server -> sites)",
                f"{down:.0f} MB/s", down >= TARGET_MBPS,
            ))  # fmt: skip
            out.append((
                f"{job.label}: >= {TARGET_MBPS:.0f} MB/s up (sites -> server, incl. aggregation)",
                f"{up:.0f} MB/s", up >= TARGET_MBPS,
            ))  # fmt: skip
            both = job.mbps(job.round_s, 2)
            out.append((
                f"{job.label}: >= {TARGET_MBPS:.0f} MB/s both directions over the round",
                f"{both:.0f} MB/s", both >= TARGET_MBPS,
            ))  # fmt: skip
            ratio = job.peaks.total / job.model_bytes
            out.append((
                f"{job.label}: server peak RSS (SP+SJ) <= {TARGET_RSS_RATIO:.0f}x model",
                f"{ratio:.2f}x", ratio <= TARGET_RSS_RATIO,
            ))  # fmt: skip
        return out


ROUND_HEADERS = (
    "model", "bytes", "rounds", "final val", "round 1 s", "s/round", "between s", "submit s",
    "submit->finished s", "server s",
)  # fmt: skip
BIG_HEADERS = (
    "model", "1st site s", "down s", "down MB/s", "up s", "up MB/s", "both MB/s", "SP base MiB",
    "SP MiB", "SJ MiB", "SP+SJ MiB", "SP+SJ/model", "SP/model", "SJ/model", "site MiB", "all MiB",
)  # fmt: skip


def round_rows(jobs: Sequence[JobResult]) -> list[list[str]]:
    """Rows of the seconds-per-round table."""
    return [
        [
            j.label, size_text(j.model_bytes), str(len(j.rounds)),
            "on" if j.final_validation else "off", f"{j.rounds[0].seconds:.3f}",
            f"{j.round_s:.3f}", f"{j.between_s:.3f}", f"{j.submit_s:.2f}", f"{j.wall_s:.2f}",
            f"{j.server_s:.2f}",
        ]
        for j in jobs
    ]  # fmt: skip


def big_rows(jobs: Sequence[JobResult]) -> list[list[str]]:
    """Rows of the throughput and memory table."""
    rows = []
    for j in jobs:
        p = j.peaks
        sp = max(p.sp, p.sp_hwm)
        sj = max(p.sj, p.sj_hwm)
        rows.append([
            j.label, f"{j.first_down_s:.3f}", f"{j.down_s:.3f}", f"{j.mbps(j.down_s):.0f}",
            f"{j.up_s:.3f}", f"{j.mbps(j.up_s):.0f}", f"{j.mbps(j.round_s, 2):.0f}",
            f"{p.sp_base / MiB:.0f}", f"{sp / MiB:.0f}", f"{sj / MiB:.0f}", f"{p.total / MiB:.0f}",
            f"{p.total / j.model_bytes:.2f}x", f"{sp / j.model_bytes:.2f}x",
            f"{sj / j.model_bytes:.2f}x", f"{p.sites / MiB:.0f}", f"{p.federation / MiB:.0f}",
        ])  # fmt: skip
    return rows


GENERATED_HEADERS = (
    "model", "final val", "bytes", "arrays", "largest", "SP+SJ MiB", "SP+SJ/model", "sites MiB",
    "all MiB", "all/model", "final model",
)  # fmt: skip


def generated_rows(jobs: Sequence[JobResult]) -> list[list[str]]:
    """Rows of the server-built models table (peaks per site, whole federation, the check)."""
    rows = []
    for j in jobs:
        p = j.peaks
        layout = j.layout or {}
        largest = max((int(np.prod(s, dtype=np.int64)) * 4 for s in layout.values()), default=0)
        rows.append([
            j.label, "on" if j.final_validation else "off", size_text(j.model_bytes),
            str(len(layout)), size_text(largest), f"{p.total / MiB:.0f}",
            f"{p.total / j.model_bytes:.2f}x", " / ".join(f"{s / MiB:.0f}" for s in p.site_each),
            f"{p.federation / MiB:.0f}", f"{p.federation / j.model_bytes:.2f}x",
            j.final_check or "not checked",
        ])  # fmt: skip
    return rows


ROLES = ("SP", "SJ", "site parent", "site job")


def cpu_rows(jobs: Sequence[JobResult]) -> list[list[str]]:
    """Rows of the CPU table: user+sys seconds (sys) and fresh pages per process role."""
    rows = []
    for j in jobs:
        row = [j.label, "on" if j.final_validation else "off"]
        for role in ROLES:
            use = j.peaks.cpu.get(role, CpuUse())
            row += [
                f"{use.user_s + use.sys_s:.2f} ({use.sys_s:.2f})",
                f"{use.minflt * PAGE / MiB:.0f}",
            ]
        rows.append(row)
    return rows


CPU_HEADERS = (
    "model", "final val", "SP cpu s (sys)", "SP faults MiB", "SJ cpu s (sys)", "SJ faults MiB",
    "site parents cpu s (sys)", "faults MiB", "site jobs cpu s (sys)", "faults MiB",
)  # fmt: skip


def render(report: Report) -> str:
    """The report as text."""
    out = [
        f"Fedra federation benchmark (POC: server + {SITES} sites, gRPC + mutual TLS, localhost)",
        "",
    ]
    out += [f"  {key}: {value}" for key, value in report.machine.items()]
    out += [f"  load average at the end (1/5/15 min): {report.load_end}", ""]
    if report.startup is not None:
        out += [
            f"start to ready: {report.startup.ready_s:.2f} s (three processes started at once; "
            f"admin port open after {report.startup.listening_s:.2f} s; ready = both sites "
            "listed by check_status('client'))",
            "",
        ]
    round_jobs = list(report.jobs)
    if round_jobs:
        source = (
            "get_job run_info.rounds 'seconds'"
            if all(j.rounds_have_seconds for j in round_jobs)
            else "the SJ's log (run_info.rounds has no duration)"
        )
        out += [
            f"Seconds per round from {source}: 'sent to' -> 'done in' (broadcast to the end of "
            "aggregation incl. writing round-NNN.npz); s/round = median of rounds 2..N; between "
            "= median 'done' -> next 'sent' (the snapshot is written there); submit = zip + "
            "upload; submit->finished = client wall time from submit_job() until get_job() "
            "shows the final status (polled every 50 ms); server s = the server's duration_s",
            format_table(ROUND_HEADERS, round_rows(round_jobs)),
            "",
        ]
    big = [j for j in report.jobs if j.model_bytes >= MB]
    if big:
        out += [
            "Big models (medians of rounds 2..N): 1st site / down = 'sent' -> the first / the "
            "last site's executor has the model; up = the first result leaving a site -> "
            "'done' (incl. folding in and writing round-NNN.npz); MB/s = model x 2 sites / s "
            "('both': x 2 directions / s/round). Peak RSS over the whole job (submit -> "
            "finished): SP = server parent, "
            "SJ = server job process (max of 50 ms samples and VmHWM), SP+SJ = peak of the sum; "
            "site = peak of one site's parent + job process; all = peak of the sum of every "
            "process of the federation",
            format_table(BIG_HEADERS, big_rows(big)),
            "",
        ]
    generated = [j for j in report.jobs if j.generated]
    if generated:
        out += [
            "Initial models built by the server job (--generate, or above the job limit: "
            "ZerosPersistor in custom/, float32 zeros); peak RSS over the whole job: SP+SJ as "
            "above (the target), each site = its parent + job process, all = every process of "
            "the federation (50 ms samples); final model = models/final.npz read 64 MiB at a "
            "time, every weight against N rounds (FedAvg of 'each site adds 1' from zeros)",
            format_table(GENERATED_HEADERS, generated_rows(generated)),
            "",
        ]
    if report.jobs:
        out += [
            "CPU seconds (user+sys, sys in brackets) and minor page faults (in MiB of pages) "
            "per process role over each job, from /proc/<pid>/stat; both sites summed",
            format_table(CPU_HEADERS, cpu_rows(report.jobs)),
            "",
        ]
    targets = report.targets
    if targets:
        out += [
            "Targets",
            format_table(
                ("target", "measured", "result"),
                [[t, m, verdict(ok)] for t, m, ok in targets],
            ),
            "",
        ]
    out += ["For comparison (figures quoted by the issue, same machine type, not rerun here):"]
    out += [f"  {line}" for line in COMPARISON]
    return "\n".join(out)


def report_json(report: Report) -> dict[str, Any]:
    """The figures as plain data (for --json)."""
    jobs = []
    for j in report.jobs:
        jobs.append({
            "label": j.label, "model_bytes": j.model_bytes, "final_validation": j.final_validation,
            "round_s": [r.seconds for r in j.rounds],
            "first_down_s": [r.first_down_s for r in j.rounds],
            "down_s": [r.down_s for r in j.rounds],
            "up_s": [r.up_s for r in j.rounds], "wall_s": j.wall_s, "server_s": j.server_s,
            "submit_s": j.submit_s,
            "peaks": {k: v for k, v in vars(j.peaks).items() if k != "cpu"},
            "cpu": {k: vars(v) for k, v in j.peaks.cpu.items()},
            "generated": j.generated, "final_check": j.final_check,
            "layout": {k: list(v) for k, v in (j.layout or {}).items()},
        })  # fmt: skip
    startup = vars(report.startup) if report.startup is not None else None
    return {
        "machine": report.machine,
        "startup": startup,
        "jobs": jobs,
        "load_end": report.load_end,
    }


# -- entry point --------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.federation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default="3x3,100MB,1GB",
        help="comma-separated model sizes: a shape (3x3) or decimal MB/GB (default "
        "3x3,100MB,1GB; above 1 GiB the server job builds the model, e.g. 4GB)",
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="FedAvg rounds of the 3x3 job (default 10)"
    )
    parser.add_argument(
        "--big-rounds", type=int, default=3, help="FedAvg rounds of the big jobs (default 3)"
    )
    parser.add_argument(
        "--skip-big", action="store_true", help="only the shape-sized models (no 100MB / 1GB)"
    )
    parser.add_argument(
        "--sites", type=int, default=SITES, help=f"number of sites (default {SITES})"
    )
    parser.add_argument(
        "--generate",
        action="store_true",
        help="build every initial model in the server job (ZerosPersistor) instead of shipping "
        f"it in the job; always so for models above the job limit ({MAX_JOB_BYTES} bytes)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even when the memory/disk estimate says the machine has too little",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and the memory/disk estimate, then exit without running",
    )
    parser.add_argument(
        "--key-metric",
        action="store_true",
        help=f"best-model tracking on: the persistor's key_metric is {BEST_METRIC!r}, which the "
        "executor reports rising each round (so every round's model is the best: best.npz is "
        "written every round)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--keep", type=Path, help="keep the POC workspace in this (new) folder, for inspection"
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Planned:
    """One job of the run, as planned from the command line."""

    spec: ModelSpec
    layout: dict[str, tuple[int, ...]]
    generated: bool
    rounds: int

    @property
    def model_bytes(self) -> int:
        """Bytes of the model."""
        return layout_bytes(self.layout)

    @property
    def timeout(self) -> float:
        """Seconds the job may take (60 s per round per GB for big server-built models)."""
        if not self.spec.big:
            return 120 + self.rounds * 5
        per_round = max(60.0, 60.0 * self.model_bytes / (1000 * MB)) if self.generated else 60
        return 120 + self.rounds * per_round

    def describe(self) -> str:
        """One line for the plan (``--dry-run``)."""
        arrays = ", ".join(
            f"{name} {size_text(int(np.prod(shape, dtype=np.int64)) * 4)}"
            for name, shape in itertools.islice(self.layout.items(), 6)
        )
        if len(self.layout) > 6:
            arrays += ", ..."
        source = (
            f"built by the server job ({ZEROS_PERSISTOR})"
            if self.generated
            else "shipped in the job as initial.npz"
        )
        return (
            f"{self.spec.label}: {size_text(self.model_bytes)} in {len(self.layout)} float32 "
            f"array(s) ({arrays}), {source}; {self.rounds} rounds, final validation off; final "
            f"model checked: every weight = {self.rounds}"
        )


def plan_jobs(args: argparse.Namespace) -> list[Planned]:
    """The jobs the command line asks for (the extra final-validation job aside)."""
    specs: list[ModelSpec] = args.sizes
    if args.skip_big:
        specs = [s for s in specs if not s.big]
    plans = []
    for spec in specs:
        generated = server_built(spec, args.generate)
        rounds = args.big_rounds if spec.big else args.rounds
        plans.append(Planned(spec, model_layout(spec, generated), generated, rounds))
    return plans


@dataclass
class Resources:
    """What a run needs against what the machine has, in bytes."""

    memory_need: int
    memory_available: int
    disk_need: int
    disk_free: int
    folder: Path
    memory_why: str
    disk_why: str

    @property
    def problems(self) -> list[str]:
        """What is missing, one line each (empty when the run fits)."""
        out = []
        if self.memory_need > self.memory_available:
            out.append(
                f"not enough memory: needs about {size_text(self.memory_need)} "
                f"({self.memory_why}), {size_text(self.memory_available)} available "
                "(psutil.virtual_memory().available)"
            )
        if self.disk_need > self.disk_free:
            out.append(
                f"not enough disk in {self.folder}: needs about {size_text(self.disk_need)} "
                f"({self.disk_why}), {size_text(self.disk_free)} free"
            )
        return out

    def describe(self) -> list[str]:
        """The estimate, for the plan."""
        return [
            f"memory: needs about {size_text(self.memory_need)} ({self.memory_why}); "
            f"{size_text(self.memory_available)} available",
            f"disk in {self.folder}: needs about {size_text(self.disk_need)} ({self.disk_why}); "
            f"{size_text(self.disk_free)} free",
        ]


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest folder above that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def estimate_resources(
    plans: Sequence[Planned],
    sites: int,
    folder: Path,
    memory_available: int | None = None,
    disk_free: int | None = None,
) -> Resources:
    """The memory and disk the biggest job needs (jobs run one after another).

    Memory: the server (SP+SJ) ``SERVER_MODELS`` x model (the target), each site
    ``SITE_MODELS`` x model (it holds the task and its result), and ``MIN_AVAILABLE`` kept
    free (under it a job is aborted). Disk: ``SPOOL_MODELS`` + ``SPOOL_MODELS_PER_SITE`` x
    sites models for messages spooled on the way, one model per round and the final one (the
    server keeps ``round-NNN.npz``), and for the ``.npz`` path the initial model and its copy
    in the exported job.
    """
    memory_need = disk_need = 0
    memory_why = disk_why = "nothing to run"
    for plan in plans:
        size = plan.model_bytes
        memory = int(size * (SERVER_MODELS + SITE_MODELS * sites)) + MIN_AVAILABLE
        if memory > memory_need:
            memory_need = memory
            memory_why = (
                f"{size_text(size)} model x ({SERVER_MODELS} server + {SITE_MODELS} x {sites} "
                f"sites) + {size_text(MIN_AVAILABLE)} kept free"
            )
        shipped = 0 if plan.generated else 2
        spooled = SPOOL_MODELS + SPOOL_MODELS_PER_SITE * sites
        disk = size * (spooled + plan.rounds + 1 + shipped)
        if disk > disk_need:
            disk_need = disk
            disk_why = (
                f"{size_text(size)} model x ({spooled} spooled + {plan.rounds} rounds + 1 "
                f"final" + (" + 2 initial .npz and job copy" if shipped else "") + ")"
            )
    folder = existing_parent(folder)
    return Resources(
        memory_need=memory_need,
        memory_available=(
            int(psutil.virtual_memory().available) if memory_available is None else memory_available
        ),
        disk_need=disk_need,
        disk_free=int(shutil.disk_usage(folder).free) if disk_free is None else disk_free,
        folder=folder,
        memory_why=memory_why,
        disk_why=disk_why,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; return the exit status."""
    global SITES, KEY_METRIC
    args = parse_args(argv)
    if args.sites < 1:
        raise SystemExit("--sites must be at least 1")
    SITES = args.sites
    KEY_METRIC = args.key_metric
    plans = plan_jobs(args)
    began = time.perf_counter()

    def progress(text: str) -> None:
        print(f"  {text} ...", file=sys.stderr, flush=True)

    def phase(text: str) -> None:
        print(f"  [{time.perf_counter() - began:7.1f} s] {text}", file=sys.stderr, flush=True)

    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"--keep {args.keep}: the folder must not exist yet")
    resources = estimate_resources(
        plans, SITES, args.keep if args.keep is not None else Path(tempfile.gettempdir())
    )
    if args.dry_run:
        print(f"Plan: POC federation, server + {SITES} sites, gRPC + mutual TLS, localhost")
        print("\n".join(f"  {plan.describe()}" for plan in plans))
        if any(not p.spec.big for p in plans):
            print("  (and one 5-round job with final validation on, for the first shape)")
        print("\n".join(f"  {line}" for line in resources.describe()))
    if resources.problems:
        text = "; ".join(resources.problems)
        if not args.force:
            raise SystemExit(f"bench.federation: {text}. Use --force to run anyway.")
        print(f"  --force: running anyway ({text})", file=sys.stderr, flush=True)
    if args.dry_run:
        print("  resources: enough" if not resources.problems else "  resources: NOT enough")
        return 0

    report = Report(machine_info())
    report.machine["best-model tracking"] = (
        f"on (key_metric {BEST_METRIC!r}, best.npz written every round)" if KEY_METRIC else "off"
    )
    first, again = fill_rate()
    report.machine["fresh memory (bytearray(512 MiB) zero-fill)"] = (
        f"{first:.0f} MB/s first, {again:.0f} MB/s again"
    )
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fedra-fed-")))
        fed = Federation.prepare(workdir / "poc", SITES)
        sampler: RssSampler | None = None
        try:
            progress(f"starting the server and {SITES} sites (ports {fed.fed_port}, "
                     f"{fed.admin_port})")  # fmt: skip
            report.startup = start_federation(fed)
            if any(p.spec.big for p in plans):
                phase(f"federation ready in {report.startup.ready_s:.1f} s")
            sampler = RssSampler(
                fed.procs["server"].pid, [fed.procs[s].pid for s in fed.layout.sites]
            )
            sampler.start()
            validation_job_done = False
            for plan in plans:
                spec, rounds = plan.spec, plan.rounds
                npz: Path | None = None
                if plan.generated:
                    model_bytes = plan.model_bytes
                else:
                    npz = workdir / f"initial-{spec.label}.npz"
                    model_bytes = write_model(plan.layout, npz)
                progress(f"{spec.label}: {rounds} rounds, final validation off"
                         + (" (initial model built by the server job)" if plan.generated
                            else ""))  # fmt: skip
                folder = build_job(
                    workdir / f"job-{spec.label}",
                    f"bench-{spec.label}",
                    rounds,
                    npz,
                    False,
                    plan.layout,
                )
                report.jobs.append(
                    run_job(
                        fed, sampler, folder, spec.label, model_bytes, False, plan.timeout,
                        layout=plan.layout, num_rounds=rounds, generated=plan.generated,
                        phase=phase if spec.big else None,
                    )
                )  # fmt: skip
                if not spec.big and not validation_job_done:
                    validation_job_done = True
                    progress(f"{spec.label}: 5 rounds, final validation on (FedAvg defaults)")
                    folder = build_job(
                        workdir / f"job-{spec.label}-fv",
                        f"bench-{spec.label}-fv",
                        5,
                        npz,
                        True,
                        plan.layout,
                    )
                    report.jobs.append(
                        run_job(
                            fed, sampler, folder, spec.label, model_bytes, True, 120,
                            layout=plan.layout, num_rounds=5, generated=plan.generated,
                        )
                    )  # fmt: skip
                if npz is not None:
                    npz.unlink()
        finally:
            if sampler is not None:
                sampler.stop()
            fed.stop_all()
    report.load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(render(report), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report_json(report), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
