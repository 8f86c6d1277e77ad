"""The site side of the Ray backend: the body of a site actor, and the plain data it exchanges.

A :class:`SiteWorker` runs inside a Ray actor process. It gets the job as zip bytes, unpacks
and validates it once (job code is imported only from the job's own ``custom/`` folders), and
then runs the tasks of the sites assigned to it, each through the same
:func:`~fedra.simulator.sites.build_site_runner` as the thread backend. Models come and go as
:func:`model_to_plain` dicts: numpy arrays, numbers and strings, nothing else. This module
imports no Ray (Ray wraps the class in ``ray_backend.py``).
"""

from __future__ import annotations

import collections
import io
import os
import shutil
import socket
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import TypedDict

import numpy as np

from fedra.client import SiteRunner
from fedra.core import FLModel, JsonCompatible, MetricValue, Params, ParamsType, Task
from fedra.job import activate_custom_dirs, load_job, unzip_job
from fedra.simulator.sites import build_site_runner

#: ``(task id, task name, site, site index)``: one task of a batch, as an actor gets it.
Entry = tuple[str, str, str, int]
#: ``(site, key, value, step)``: one metric a site logged.
LogRecord = tuple[str, str, float, int | None]


class PlainModel(TypedDict):
    """An FLModel as plain data (:func:`model_to_plain`): what crosses between Ray processes."""

    params: Params | None
    params_type: str
    metrics: dict[str, MetricValue]
    meta: dict[str, JsonCompatible]
    current_round: int | None
    total_rounds: int | None


class Drained(TypedDict):
    """What an actor's sites logged and printed since its last reply."""

    logs: list[LogRecord]
    stdout: str
    stderr: str


class Reply(Drained):
    """The outcome of one task: an error (traceback) or the result model, if any."""

    task_id: str
    error: str | None
    model: PlainModel | None


_SCALARS = (str, int, float, bool, type(None), np.generic)


def _check_plain(value: object, where: str) -> None:
    """Refuse anything but numbers, strings, None, arrays of numbers, lists and str-keyed dicts."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{where}: arrays of Python objects cannot leave a site")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {type(key).__name__}")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _SCALARS) or (
        isinstance(value, np.generic) and value.dtype.hasobject
    ):
        raise TypeError(
            f"{where}: only numbers, strings, lists, dicts and numpy arrays can leave a site, "
            f"got {type(value).__name__}"
        )


def model_to_plain(model: FLModel) -> PlainModel:
    """``model`` as a dict of plain data (numpy arrays, numbers, strings), checked."""
    plain: PlainModel = {
        "params": model.params,
        "params_type": model.params_type.value,
        "metrics": model.metrics,
        "meta": model.meta,
        "current_round": model.current_round,
        "total_rounds": model.total_rounds,
    }
    _check_plain(plain, "model")
    return plain


def model_from_plain(plain: PlainModel) -> FLModel:
    """The FLModel that :func:`model_to_plain` took apart."""
    _check_plain(dict(plain), "model")
    return FLModel(
        params=plain["params"],
        params_type=ParamsType(plain["params_type"]),
        metrics=dict(plain["metrics"]),
        meta=dict(plain["meta"]),
        current_round=plain["current_round"],
        total_rounds=plain["total_rounds"],
    )


class _Capture(io.TextIOBase):
    """Collects what the actor's code prints, for the driver to print (Ray's own forwarding
    of an actor's output is asynchronous and loses the end of a short run)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def drain(self) -> str:
        with self._lock:
            text, self._parts = "".join(self._parts), []
        return text


class SiteWorker:
    """The body of one Ray actor: runs the tasks of the sites assigned to it.

    For each task it builds the site's runner (or reuses a kept one), runs the task, and
    replies with the result as plain data, plus what the actor's sites logged and printed
    meanwhile (``logs``, ``stdout``, ``stderr``).
    """

    def __init__(
        self, job_zip: bytes, job_id: str, num_sites: int, workspace: str, keep_sites: int
    ) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="fedra-ray-job-"))
        self._definition = load_job(unzip_job(job_zip, self._tmp / "job"))
        activate_custom_dirs(*(app.custom_dir for app in self._definition.apps.values()))
        self._job_id = job_id
        self._num_sites = num_sites
        self._workspace = Path(workspace)
        self._keep = keep_sites
        self._lock = threading.Lock()
        self._live: collections.OrderedDict[str, SiteRunner] = collections.OrderedDict()
        self._current: SiteRunner | None = None  # the site running a task now
        self._logs: list[LogRecord] = []
        self._aborted = threading.Event()
        self._stdout, self._stderr = _Capture(), _Capture()
        sys.stdout, sys.stderr = self._stdout, self._stderr  # this process runs only sites

    def ready(self) -> str:
        """Where this actor runs (``host:pid``), once it is up."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def _log(self, site: str, key: str, value: float, step: int | None) -> None:
        with self._lock:
            self._logs.append((site, key, value, step))

    def _drain(self) -> Drained:
        """What the sites logged and printed since the last reply."""
        with self._lock:
            logs, self._logs = self._logs, []
        return {"logs": logs, "stdout": self._stdout.drain(), "stderr": self._stderr.drain()}

    def _runner(self, site: str, index: int) -> SiteRunner:
        with self._lock:
            runner = self._live.pop(site, None)
            if runner is not None:
                self._current = runner
                return runner
        workdir = self._workspace / "sites" / site
        runner = build_site_runner(
            self._definition, site, index, self._num_sites, self._job_id, workdir, self._log
        )
        with self._lock:
            self._current = runner
        return runner

    def _release(self, site: str, runner: SiteRunner) -> None:
        """Keep ``runner`` started (the most recently used ``keep_sites``) or stop it."""
        evicted = [runner]
        with self._lock:
            self._current = None
            if self._keep > 0 and not self._aborted.is_set():
                self._live[site] = runner
                evicted = []
                while len(self._live) > self._keep:
                    evicted.append(self._live.popitem(last=False)[1])
        for old in evicted:
            old.stop()

    def run(self, data: PlainModel, entries: list[Entry]) -> list[Reply]:
        """Run the tasks in ``entries`` (which share ``data``) one after the other."""
        model = model_from_plain(data)
        replies = []
        for task_id, name, site, index in entries:
            if self._aborted.is_set():
                replies.append(self._reply(task_id, "the run was aborted", None))
                continue
            task = Task(name, model, site, id=task_id, job_id=self._job_id)
            replies.append(self._run_one(task, index))
        return replies

    def _run_one(self, task: Task, index: int) -> Reply:
        try:
            runner = self._runner(task.site, index)
        except Exception as exc:
            return self._reply(task.id, "".join(traceback.format_exception(exc)), None)
        result = runner.handle(task)
        self._release(task.site, runner)
        if result.ok and result.data is not None:
            try:
                return self._reply(task.id, result.error, model_to_plain(result.data))
            except TypeError as exc:
                return self._reply(task.id, "".join(traceback.format_exception(exc)), None)
        return self._reply(task.id, result.error, None)

    def _reply(self, task_id: str, error: str | None, model: PlainModel | None) -> Reply:
        """A task's reply, with what was logged and printed since the last one."""
        drained = self._drain()
        return {
            "task_id": task_id,
            "error": error,
            "model": model,
            "logs": drained["logs"],
            "stdout": drained["stdout"],
            "stderr": drained["stderr"],
        }

    def stop_all(self) -> Drained:
        """Stop the kept sites; return what was logged and printed since the last reply."""
        with self._lock:
            runners = list(self._live.values())
            self._live.clear()
        for runner in runners:
            runner.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)
        return self._drain()

    def abort(self) -> None:
        """Stop at once: the running task's site and the kept ones (scripts get a short grace)."""
        self._aborted.set()
        with self._lock:
            runners = list(self._live.values())
            if self._current is not None:
                runners.append(self._current)
            self._live.clear()
        for runner in runners:
            runner.ctx.abort.set()
            runner.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)
