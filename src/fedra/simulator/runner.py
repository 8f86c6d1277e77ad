"""The simulator: a job's server workflow and N sites in one process, over in-memory dispatch.

The workflows, executors and Client API scripts are exactly those a real federation runs;
only the transport differs: tasks go from the TaskBoard to a site backend (the seam in
``sites.py``): by default a pool of ``threads`` workers that run each site's executor and hand
the result straight back; with ``backend="ray"``, a pool of Ray actors (``ray_backend.py``).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from fedra.client import SiteRunner
from fedra.core import (
    ConfigError,
    FLModel,
    JobLifecycle,
    JobStatus,
    MetricValue,
    RunAborted,
    Task,
    TaskResult,
    Workflow,
    new_id,
    release_large_buffers,
)
from fedra.filters import Filter, FilteredFleet
from fedra.job import (
    FedJob,
    JobDefinition,
    activate_custom_dirs,
    build_persistor,
    build_result_filters,
    build_workflows,
    load_custom_class,
    load_job,
)
from fedra.serverapp import (
    EventLog,
    MetricsSink,
    ModelPersistor,
    RunOutcome,
    RunStore,
    ServerRun,
    TaskBoard,
    write_json,
)
from fedra.simulator.interrupt import interrupt_reason, sigterm_as_interrupt
from fedra.simulator.progress import ProgressDisplay
from fedra.simulator.ray_backend import RayOptions, RaySites, check_backend
from fedra.simulator.sites import SiteBackend, build_site_runner

log = logging.getLogger("fedra.simulator")

#: Outputs of an earlier run in the same workspace, removed before a new (not resumed) run.
RUN_OUTPUTS = ("models", "snapshots", "tb_events", "sites", "cross_site_eval.json", "summary.json")


class RoundSummary(TypedDict):
    """One finished round in ``summary.json``."""

    workflow: str
    round: int
    metrics: dict[str, MetricValue]
    seconds: float


class SummaryJson(TypedDict):
    """``summary.json``: :class:`RunSummary` with the models written and how to view metrics."""

    job: str
    job_id: str
    status: str
    sites: list[str]
    seconds: float
    rounds: list[RoundSummary]
    final_metrics: dict[str, MetricValue]
    error: str | None
    failed_site: str | None
    failed_task: str | None
    site_traceback: str | None
    history: list[dict[str, object]]
    models: list[str]
    tensorboard: str


@dataclass
class RunSummary:
    """What a simulation produced (also written to ``summary.json``)."""

    job: str
    job_id: str
    status: JobStatus
    sites: list[str]
    workspace: Path
    seconds: float
    rounds: list[RoundSummary] = field(default_factory=list)
    final_metrics: dict[str, MetricValue] = field(default_factory=dict)
    error: str | None = None
    failed_site: str | None = None
    failed_task: str | None = None
    site_traceback: str | None = None
    history: list[dict[str, object]] = field(default_factory=list)
    final: FLModel | None = None

    def to_json(self) -> SummaryJson:
        """The JSON form written to summary.json."""
        return {
            "job": self.job,
            "job_id": self.job_id,
            "status": self.status.value,
            "sites": self.sites,
            "seconds": round(self.seconds, 3),
            "rounds": self.rounds,
            "final_metrics": self.final_metrics,
            "error": self.error,
            "failed_site": self.failed_site,
            "failed_task": self.failed_task,
            "site_traceback": self.site_traceback,
            "history": self.history,
            "models": sorted(p.name for p in (self.workspace / "models").glob("*.npz")),
            "tensorboard": f"tensorboard --logdir {self.workspace / 'tb_events'}",
        }


def site_names(
    job: JobDefinition, n_clients: int | None, clients: Sequence[str] | None
) -> list[str]:
    """The simulated sites: explicit names, or ``site-1 … site-N``."""
    if clients:
        names = list(clients)
        if len(set(names)) != len(names):
            raise ConfigError(f"site names must be unique: {names}")
    else:
        count = n_clients if n_clients is not None else max(job.meta.min_clients, 2)
        if count < 1:
            raise ConfigError(f"the number of sites must be >= 1, got {count}")
        names = [f"site-{i}" for i in range(1, count + 1)]
    missing = [s for s in names if job.client_app(s) is None]
    if missing:
        raise ConfigError(f"the job's deploy_map has no app for sites {missing}")
    absent = [s for s in job.meta.mandatory_clients if s not in names]
    if absent:
        raise ConfigError(f"the job's mandatory_clients {absent} are not among the sites {names}")
    if len(names) < job.meta.min_clients:
        raise ConfigError(
            f"the job needs min_clients={job.meta.min_clients}, got {len(names)} sites"
        )
    return names


class _Workers:
    """``threads`` worker threads running site tasks from one queue.

    Back-pressure: a worker takes a slot before running a task and the slot comes back when
    the workflow has consumed the result, so at most ``threads`` results exist at once
    (server memory stays bounded whatever the number of sites).
    """

    def __init__(self, runners: dict[str, SiteRunner], board_ref: list[TaskBoard], threads: int):
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._runners = runners
        self._board_ref = board_ref
        self._slots = threading.BoundedSemaphore(threads)
        self._threads = [
            threading.Thread(target=self._work, name=f"sim-worker-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def deliver(self, task: Task) -> None:
        self._queue.put(task)

    def consumed(self, result: TaskResult) -> None:
        del result
        self._slots.release()

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            board = self._board_ref[0]
            if not board.is_outstanding(task.id) or board.aborted():
                continue
            self._slots.acquire()
            verdict = board.submit(self._runners[task.site].handle(task))
            if not verdict.accepted:
                self._slots.release()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def _stop_sites(runners: dict[str, SiteRunner], abort: bool) -> None:
    """Stop every site's executors in parallel."""
    threads = []
    for runner in runners.values():
        if abort:
            runner.ctx.abort.set()
        thread = threading.Thread(target=runner.stop, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(15.0)


class _ThreadSites:
    """The default site backend: every site's runner in this process, run by worker threads."""

    def __init__(self, runners: dict[str, SiteRunner], threads: int) -> None:
        self._runners = runners
        self._board_ref: list[TaskBoard] = []
        self._workers = _Workers(runners, self._board_ref, threads)

    def bind(self, board: TaskBoard) -> None:
        self._board_ref.append(board)

    def deliver(self, task: Task) -> None:
        self._workers.deliver(task)

    def deliver_many(self, tasks: list[Task]) -> None:
        for task in tasks:
            self._workers.deliver(task)

    def consumed(self, result: TaskResult) -> None:
        self._workers.consumed(result)

    def close(self, abort: bool) -> None:
        self._workers.close()
        _stop_sites(self._runners, abort=abort)


def _start_sites(
    definition: JobDefinition,
    sites: list[str],
    job_id: str,
    ws: Path,
    threads: int,
    ray_options: RayOptions | None,
    log_sink: MetricsSink,
    kits: Path | None = None,
) -> SiteBackend:
    """The site backend: Ray actors when ``ray_options`` is given, else worker threads."""
    if ray_options is not None:
        return RaySites(ray_options, definition, sites, job_id, ws, log_sink.add)
    runners = {
        site: build_site_runner(
            definition,
            site,
            index,
            len(sites),
            job_id,
            ws / "sites" / site,
            log_sink.add,
            startup_dir=kits / site / "startup" if kits is not None else None,
        )
        for index, site in enumerate(sites)
    }
    return _ThreadSites(runners, threads)


def _prepare_workspace(workspace: Path, resume: bool) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    if resume:
        return
    for name in RUN_OUTPUTS:
        path = workspace / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def simulate(
    job: str | Path | FedJob,
    n_clients: int | None = None,
    threads: int = 1,
    workspace: str | Path = "simulator-workspace",
    clients: Sequence[str] | None = None,
    show_progress: bool = True,
    resume: bool = False,
    backend: str = "thread",
    ray_options: RayOptions | None = None,
    kits: str | Path | None = None,
) -> RunSummary:
    """Run ``job`` with simulated sites; return (and write) the run summary.

    ``job`` is a job folder or a :class:`fedra.job.FedJob`. Results land in ``workspace``:
    ``models/`` (each round, best, final), ``tb_events/<site>/``, ``summary.json``.
    ``backend="ray"`` runs the sites as Ray actors, set up by ``ray_options``.
    ``kits``: a folder of startup kits laid out as ``fedra poc prepare`` writes them
    (``<site>/startup/``, ``server/startup/``): the key material (HE contexts) each simulated
    participant reads; thread backend only.
    """
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if kits is not None and backend == "ray":
        raise ConfigError("kits: only with the thread backend")
    check_backend(backend, threads, ray_options)
    if backend == "ray":
        ray_options = ray_options or RayOptions()
    release_large_buffers()
    ws = Path(workspace)
    # Validate everything first: a mistyped job must not wipe the previous run's results.
    definition = job.export(ws / "job") if isinstance(job, FedJob) else load_job(job)
    sites = site_names(definition, n_clients, clients)
    _prepare_workspace(ws, resume)
    file_log = _attach_file_log(ws / "log.txt")
    try:
        return _simulate(
            definition,
            sites,
            threads,
            ws,
            show_progress,
            resume,
            ray_options,
            kits=Path(kits) if kits is not None else None,
        )
    finally:
        logging.getLogger("fedra").removeHandler(file_log)
        file_log.close()


@dataclass(frozen=True)
class _ServerApp:
    """The job's server side, built before any site starts: a broken job starts none."""

    persistor: ModelPersistor
    workflows: list[Workflow]
    filters: list[Filter]
    initial: FLModel | None

    @classmethod
    def build(cls, definition: JobDefinition) -> _ServerApp:
        """Import the job's custom code and instantiate its server components."""
        app = definition.server_app
        activate_custom_dirs(*(a.custom_dir for a in definition.apps.values()))
        persistor = build_persistor(app)
        workflows = build_workflows(app)
        filters = build_result_filters(app)

        def load_class(name: str) -> object:
            return load_custom_class(app.custom_dir, name)

        initial = persistor.initial_model(app.custom_dir, load_class)
        return cls(persistor, workflows, filters, initial)


def _simulate(
    definition: JobDefinition,
    sites: list[str],
    threads: int,
    ws: Path,
    show_progress: bool,
    resume: bool,
    ray_options: RayOptions | None = None,
    kits: Path | None = None,
) -> RunSummary:
    job_id = new_id()
    started = time.monotonic()
    log.info(
        "simulating job %s (%s) with %d sites, %d threads",
        definition.meta.name,
        job_id,
        len(sites),
        threads,
    )
    server = _ServerApp.build(definition)
    tracking = MetricsSink(ws / "tb_events")
    site_backend = _start_sites(
        definition, sites, job_id, ws, threads, ray_options, tracking, kits=kits
    )
    board = TaskBoard(
        sites,
        site_backend.deliver,
        job_id=job_id,
        consumed=site_backend.consumed,
        deliver_many=site_backend.deliver_many,
    )
    site_backend.bind(board)
    display = ProgressDisplay() if show_progress else None
    events = EventLog(display=display)
    lifecycle = JobLifecycle()
    run = ServerRun(
        server.workflows,
        FilteredFleet(board, server.filters) if server.filters else board,
        RunStore(ws),
        events,
        initial=server.initial,
        lifecycle=lifecycle,
        key_metric=server.persistor.key_metric,
        higher_is_better=server.persistor.higher_is_better,
        startup_dir=kits / "server" / "startup" if kits is not None else None,
    )
    with sigterm_as_interrupt():
        outcome = _run_to_end(run, resume, display, board, lifecycle, site_backend, tracking)
    summary = _summary(definition, job_id, sites, ws, started, lifecycle, events, outcome)
    write_json(ws / "summary.json", summary.to_json())
    log.info("job %s ended: %s", job_id, summary.status.value)
    if outcome is None:
        raise RunAborted(f"{lifecycle.history[-1].reason}; partial results in {ws}")
    return summary


def _run_to_end(
    run: ServerRun,
    resume: bool,
    display: ProgressDisplay | None,
    board: TaskBoard,
    lifecycle: JobLifecycle,
    site_backend: SiteBackend,
    tracking: MetricsSink,
) -> RunOutcome | None:
    """Run the job, then stop the sites (aborting them unless it completed) and close the
    metrics; the outcome, or None when Ctrl-C or SIGTERM interrupted the run (then aborted)."""
    interrupted = False
    outcome: RunOutcome | None = None
    try:
        if display is not None:
            with display:
                outcome = run.run(resume=resume)
        else:
            outcome = run.run(resume=resume)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see fedra.simulator.interrupt)
        interrupted = True
        board.abort(interrupt_reason(exc))
        lifecycle.move(JobStatus.FINISHED_ABORTED, interrupt_reason(exc))
    finally:
        failed = interrupted or lifecycle.status != JobStatus.FINISHED_COMPLETED
        if failed:
            board.abort(lifecycle.history[-1].reason)
        site_backend.close(abort=failed)
        tracking.close()
    return outcome


def _summary(
    definition: JobDefinition,
    job_id: str,
    sites: list[str],
    ws: Path,
    started: float,
    lifecycle: JobLifecycle,
    events: EventLog,
    outcome: RunOutcome | None,
) -> RunSummary:
    """What the run produced; ``outcome`` None: interrupted."""
    summary = RunSummary(
        job=definition.meta.name,
        job_id=job_id,
        status=lifecycle.status,
        sites=sites,
        workspace=ws,
        seconds=time.monotonic() - started,
        rounds=[
            {
                "workflow": r.workflow,
                "round": r.round,
                "metrics": r.metrics,
                "seconds": round(r.seconds, 4),
            }
            for r in events.rounds
        ],
        history=lifecycle.as_dicts(),
    )
    if outcome is None:
        summary.error = lifecycle.history[-1].reason  # interrupted (Ctrl-C or SIGTERM)
        return summary
    summary.error = outcome.error
    summary.failed_site = outcome.failed_site
    summary.failed_task = outcome.failed_task
    summary.site_traceback = outcome.site_traceback
    summary.final = outcome.final
    if outcome.final is not None:
        summary.final_metrics = dict(outcome.final.metrics)
    return summary


def _attach_file_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fedra")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
