"""Metrics streamed from sites, written per site as TensorBoard event files and JSON lines.

``tb_events/<site>/`` holds TensorBoard event files when the ``tensorboard`` extra
(tensorboardX) is installed, and always a ``metrics.jsonl`` that needs nothing to read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TextIO

log = logging.getLogger(__name__)


class _ScalarWriter(Protocol):
    """What is used of a TensorBoard event writer (tensorboardX's ``SummaryWriter``)."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None: ...

    def close(self) -> None: ...


class MetricsSink:
    """Thread-safe writer of per-site scalar metrics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._writers: dict[str, _ScalarWriter] = {}
        self._jsonl: dict[str, TextIO] = {}
        self._steps: dict[tuple[str, str], int] = {}
        self.last: dict[str, dict[str, float]] = {}
        self._writer_class: Callable[..., _ScalarWriter] | None = None
        self._looked_up = False

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard event files are written."""
        return self._writer() is not None

    def _writer(self) -> Callable[..., _ScalarWriter] | None:
        # Imported on first use: tensorboardX pulls in torch when it is installed, which a
        # run whose sites log nothing should not pay for (time and ~200 MB of memory).
        if not self._looked_up:
            self._looked_up = True
            try:
                from tensorboardX import SummaryWriter

                self._writer_class = SummaryWriter
            except ImportError:  # pragma: no cover - depends on the extra
                log.warning("tensorboardX is not installed: metrics go to metrics.jsonl only")
        return self._writer_class

    def add(self, site: str, key: str, value: float, step: int | None) -> None:
        """Record ``key = value`` at ``step`` for ``site`` (step defaults to a counter)."""
        with self._lock:
            if step is None:
                step = self._steps.get((site, key), 0)
            self._steps[(site, key)] = step + 1
            folder = self.root / site
            if site not in self._jsonl:
                folder.mkdir(parents=True, exist_ok=True)
                self._jsonl[site] = open(folder / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
                writer_class = self._writer()
                if writer_class is not None:
                    self._writers[site] = writer_class(logdir=str(folder))
            record = {"key": key, "value": value, "step": step, "time": time.time()}
            self._jsonl[site].write(json.dumps(record) + "\n")
            if site in self._writers:
                self._writers[site].add_scalar(key, value, step)
            self.last.setdefault(site, {})[key] = value

    def close(self) -> None:
        """Flush and close every file."""
        with self._lock:
            for writer in self._writers.values():
                writer.close()
            for handle in self._jsonl.values():
                handle.close()
            self._writers.clear()
            self._jsonl.clear()
