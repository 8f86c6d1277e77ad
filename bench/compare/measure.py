"""Run one workload driver in a subprocess and measure it from outside.

A driver (``bench/compare/peers/*.py`` in a peer's environment, or
``bench.compare.fedra_run`` in Fedra's) prints protocol lines on stdout:

* ``BENCH-PID <role> <pid>``: also sample the process tree rooted at ``pid`` as ``role``;
* ``BENCH-PHASE <label>``: a new memory window starts (peaks are kept per window);
* ``BENCH-RESULT <json>``: the driver's figures (the last one counts).

A thread samples, every 50 ms, the summed RSS of the driver's whole process tree
(``tree``) and of each announced tree, with psutil, keeping the peak per window. Pages
shared between processes (forked copy-on-write pages, shared memory) count once per
process: the sum is an upper bound. Every process seen in the driver's tree is ended at
the end if still alive (the driver ends its own first); a run is killed when it passes its
timeout or when the machine's available memory falls under ``min_available``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

SAMPLE_S = 0.05
PREFIX_RESULT = "BENCH-RESULT "
PREFIX_PID = "BENCH-PID "
PREFIX_PHASE = "BENCH-PHASE "
GiB = 2**30


@dataclass
class Run:
    """What one driver run gave."""

    ok: bool
    result: dict[str, Any] | None
    process_s: float
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> window -> bytes
    error: str = ""
    log: Path | None = None


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(procs: Sequence[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += int(proc.memory_info().rss)
    return total


class TreeSampler(threading.Thread):
    """Samples the RSS of the driver's tree and of announced trees, per window."""

    def __init__(self, pid: int, min_available: int) -> None:
        super().__init__(name="tree-sampler", daemon=True)
        self.driver = psutil.Process(pid)
        self.roots: dict[str, psutil.Process] = {"tree": self.driver}
        self.window = "run"
        self.peaks: dict[str, dict[str, int]] = {}
        self.seen: dict[int, psutil.Process] = {}
        self.min_available = min_available
        self.low_memory = threading.Event()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def announce(self, role: str, pid: int) -> None:
        """Sample the tree rooted at ``pid`` as ``role`` from now on."""
        with self._lock, contextlib.suppress(psutil.Error):
            self.roots[role] = psutil.Process(pid)

    def phase(self, label: str) -> None:
        """Start a new window."""
        with self._lock:
            self.window = label

    def sample(self) -> None:
        """One sample of every tree."""
        with self._lock:
            for role, root in self.roots.items():
                procs = _tree(root)
                for proc in procs:
                    self.seen.setdefault(proc.pid, proc)
                rss = _rss(procs)
                by_window = self.peaks.setdefault(role, {})
                by_window[self.window] = max(by_window.get(self.window, 0), rss)
        if psutil.virtual_memory().available < self.min_available:
            self.low_memory.set()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_S)

    def stop(self) -> None:
        """End sampling."""
        self._stop_event.set()
        self.join(5)

    def end_leftovers(self) -> None:
        """Kill every process seen in the tree that is still alive (same pid and start)."""
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()


def run_driver(
    command: Sequence[str],
    log: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    min_available: int = 2 * GiB,
) -> Run:
    """Run ``command`` (a driver), sample its memory, return its result line and peaks."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] | None = None
    started = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        sampler = TreeSampler(proc.pid, min_available)
        sampler.start()
        killed = ""

        def watchdog() -> None:
            nonlocal killed
            deadline = time.monotonic() + timeout
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    killed = f"timeout after {timeout:.0f} s"
                elif sampler.low_memory.is_set():
                    killed = f"low memory (available < {min_available / GiB:.1f} GiB)"
                if killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    sampler.end_leftovers()
                    return
                time.sleep(0.1)

        guard = threading.Thread(target=watchdog, daemon=True)
        guard.start()
        assert proc.stdout is not None
        with open(log.with_suffix(".stdout"), "wb") as out:
            for raw in proc.stdout:
                out.write(raw)
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if line.startswith(PREFIX_RESULT):
                    result = json.loads(line[len(PREFIX_RESULT) :])
                elif line.startswith(PREFIX_PID):
                    role, pid = line[len(PREFIX_PID) :].split()
                    sampler.announce(role, int(pid))
                elif line.startswith(PREFIX_PHASE):
                    sampler.phase(line[len(PREFIX_PHASE) :].strip())
        proc.stdout.close()
        code = proc.wait()
        process_s = time.perf_counter() - started
        guard.join(5)
        sampler.stop()
        sampler.end_leftovers()
    if killed:
        return Run(False, result, process_s, sampler.peaks, killed, log)
    if code != 0 or result is None:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        why = f"exit {code}" + (": " + " | ".join(tail) if tail else "")
        return Run(False, result, process_s, sampler.peaks, why, log)
    return Run(True, result, process_s, sampler.peaks, "", log)
