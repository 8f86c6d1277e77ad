"""The Ray backend of the simulator: sites run as Ray actors, on this machine or a cluster.

``fedra simulate JOB --backend ray`` runs the same server workflow as the thread backend; only
the sites move. A bounded pool of actors (``actors``, by default the cluster's CPUs divided by
``site_cpus``) runs them: site number ``i`` always goes to actor ``i % actors``, and an actor
(its body: ``ray_worker.py``) builds a site's :class:`~fedra.client.SiteRunner` for a task,
runs it and, unless it keeps a few sites started (``keep_sites``), stops it again. Memory
therefore grows with the number of actors, not with the number of sites; what a site must keep
from one round to the next it keeps in its workspace folder (``WORKSPACE/sites/<site>``), as a
real site would on disk.

What crosses into Ray is plain data only: the job folder as zip bytes (unpacked and validated
by each actor, so job code is imported only from the job's own ``custom/`` folders), and models
as dicts of numpy arrays, numbers and strings. Ray itself is imported only here, and only when
this backend is used: the default thread backend needs no Ray.
"""

from __future__ import annotations

import collections
import logging
import math
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fedra.core import ConfigError, FedraError, Task, TaskResult
from fedra.job import JobDefinition, zip_job
from fedra.serverapp import TaskBoard
from fedra.simulator.ray_worker import (
    Drained,
    LogRecord,
    SiteWorker,
    model_from_plain,
    model_to_plain,
)
from fedra.simulator.sites import BACKENDS, LogSink

log = logging.getLogger("fedra.simulator.ray")

#: A batch of tasks sent to an actor in one call holds at most this many tasks …
MAX_BATCH = 64
#: … and at most about this many bytes of model data (one task's data times the batch size).
BATCH_BYTES = 64 * 2**20
#: How long a normal end waits for the actors to stop their sites.
STOP_TIMEOUT = 30.0
#: How long an abort waits for the actors to stop their sites before killing them.
ABORT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RayOptions:
    """Settings of the Ray backend (``fedra simulate --backend ray``)."""

    #: The cluster to use (``ray://host:10001``, ``host:6379``, ``auto``, ``local``). None does
    #: what ``ray.init()`` does: ``RAY_ADDRESS``, else a cluster started with ``ray start`` on
    #: this machine, else a local instance for the duration of the run.
    address: str | None = None
    #: CPUs each site actor reserves (fractions allowed).
    site_cpus: float = 1.0
    #: GPUs each site actor reserves (fractions below 1 share a GPU).
    site_gpus: float = 0.0
    #: Site actors, i.e. sites that run at the same time. None: as many as the cluster's
    #: CPUs (and GPUs) hold at ``site_cpus`` (``site_gpus``) each, at most one per site.
    actors: int | None = None
    #: Sites an actor keeps started between tasks (their scripts stay alive, with whatever
    #: they hold in memory). 0: every task starts its site afresh and stops it afterwards.
    keep_sites: int = 0
    #: Seconds to wait for every actor to be placed and ready.
    start_timeout: float = 120.0

    def check(self) -> None:
        """Refuse impossible settings with a ConfigError naming the setting."""
        for name in ("site_cpus", "site_gpus", "start_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"ray option {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"ray option {name} must be >= 0, got {value!r}")
        if self.site_gpus > 1 and self.site_gpus != int(self.site_gpus):
            raise ConfigError(
                f"ray option site_gpus must be a fraction below 1 or a whole number, "
                f"got {self.site_gpus}"
            )
        if self.actors is not None and (isinstance(self.actors, bool) or self.actors < 1):
            raise ConfigError(f"ray option actors must be >= 1, got {self.actors!r}")
        if self.actors is None and self.site_cpus == 0 and self.site_gpus == 0:
            raise ConfigError("with site_cpus=0 and site_gpus=0, set the number of actors")
        if isinstance(self.keep_sites, bool) or self.keep_sites < 0:
            raise ConfigError(f"ray option keep_sites must be >= 0, got {self.keep_sites!r}")


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        error = ConfigError(
            f"the Ray backend needs the 'ray' package, which cannot be imported: {exc}"
        )
        error.hint = "install it with: pip install 'fedra[ray]'  (or drop --backend ray)"
        raise error from exc
    return ray


def check_backend(backend: str, threads: int, options: RayOptions | None) -> None:
    """Refuse a backend name or settings that do not fit it, before anything runs."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend != "ray":
        if options is not None:
            raise ConfigError("Ray options are only used with backend 'ray'")
        return
    if threads != 1:
        raise ConfigError(
            "threads is a setting of the thread backend; with backend 'ray' the number of "
            "sites running at once is the number of actors (RayOptions(actors=N), --actors N)"
        )
    (options or RayOptions()).check()
    import_ray()


# -- the driver side ----------------------------------------------------------------------
@dataclass
class _Queued:
    task: Task
    data: Any  # the ObjectRef of the task's data as plain data
    nbytes: int


class RaySites:
    """The Ray backend: implements the simulator's SiteBackend with a pool of site actors.

    One driver thread per actor takes the actor's queued tasks in batches (of one shared
    model, bounded by :data:`MAX_BATCH` and :data:`BATCH_BYTES`), calls the actor, and hands
    the results to the board. An actor gets its next batch only once the workflow has
    consumed every result of the previous one, so the driver holds at most one batch of
    results per actor, however many sites there are.
    """

    def __init__(
        self,
        options: RayOptions,
        definition: JobDefinition,
        sites: Sequence[str],
        job_id: str,
        workspace: Path,
        log_sink: LogSink,
    ) -> None:
        options.check()
        self._ray = import_ray()
        self._options = options
        self._log_sink = log_sink
        self._owns = self._connect()
        self._actors: list[Any] = []
        try:
            count = min(options.actors or self._default_actors(), len(sites))
            job_zip = self._ray.put(zip_job(definition.root))
            actor_class = self._ray.remote(SiteWorker).options(
                num_cpus=options.site_cpus, num_gpus=options.site_gpus, max_concurrency=2
            )
            self._actors = [
                actor_class.remote(
                    job_zip, job_id, len(sites), str(workspace.resolve()), options.keep_sites
                )
                for _ in range(count)
            ]
            self._wait_ready()
        except BaseException:
            self._shutdown()
            raise
        self._index = {site: i for i, site in enumerate(sites)}
        self._board: TaskBoard | None = None
        self._cond = threading.Condition()
        self._unconsumed = [0] * count  # results of each actor's last batch not yet consumed
        self._owner: dict[str, int] = {}  # task id -> actor, until consumed
        self._closing = False
        self._queues: list[collections.deque[_Queued]] = [collections.deque() for _ in range(count)]
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"ray-sites-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    # -- start-up -----------------------------------------------------------------------
    def _connect(self) -> bool:
        """Join the cluster; True when this run started Ray (and so must stop it)."""
        ray = self._ray
        if ray.is_initialized():
            log.info("Ray backend: using the Ray instance this process already joined")
            return False
        try:
            ray.init(
                address=self._options.address,
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
        except Exception as exc:
            raise ConfigError(
                f"cannot start or join Ray (address {self._options.address!r}): {exc}"
            ) from exc
        return True

    def _default_actors(self) -> int:
        resources = self._ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        counts = []
        if self._options.site_cpus > 0:
            counts.append(math.floor(cpus / self._options.site_cpus + 1e-9))
        if self._options.site_gpus > 0:
            counts.append(math.floor(gpus / self._options.site_gpus + 1e-9))
        count = min(counts)
        if count < 1:
            raise ConfigError(
                f"the Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs) cannot hold one site actor "
                f"with site_cpus={self._options.site_cpus:g}, "
                f"site_gpus={self._options.site_gpus:g}"
            )
        return count

    def _wait_ready(self) -> None:
        ray = self._ray
        pending = [actor.ready.remote() for actor in self._actors]
        done, waiting = ray.wait(
            pending, num_returns=len(pending), timeout=self._options.start_timeout
        )
        places = []
        for ref in done:
            try:
                places.append(ray.get(ref))
            except Exception as exc:
                raise FedraError(f"a Ray site actor failed to start: {exc}") from exc
        if waiting:
            raise ConfigError(
                f"only {len(done)} of {len(pending)} Ray site actors started within "
                f"{self._options.start_timeout:g} s (each reserves "
                f"{self._options.site_cpus:g} CPU, {self._options.site_gpus:g} GPU; the "
                f"cluster has {ray.cluster_resources()}): lower the number of actors or the "
                "per-site shares"
            )
        hosts = {place.split(":")[0] for place in places}
        log.info("Ray backend: %d site actors on %d node(s)", len(places), len(hosts))

    # -- the SiteBackend protocol -------------------------------------------------------
    def bind(self, board: TaskBoard) -> None:
        """Results go to ``board``."""
        self._board = board

    def deliver(self, task: Task) -> None:
        """Queue one task on its site's actor."""
        self.deliver_many([task])

    def deliver_many(self, tasks: list[Task]) -> None:
        """Queue the tasks of a broadcast; their shared data goes into Ray once."""
        refs: dict[int, tuple[Any, int]] = {}
        items = []
        for task in tasks:
            if id(task.data) not in refs:
                refs[id(task.data)] = (
                    self._ray.put(model_to_plain(task.data)),
                    task.data.nbytes(),
                )
            ref, nbytes = refs[id(task.data)]
            items.append((self._index[task.site] % len(self._actors), _Queued(task, ref, nbytes)))
        with self._cond:
            for actor, item in items:
                self._queues[actor].append(item)
            self._cond.notify_all()

    def consumed(self, result: TaskResult) -> None:
        """One result of an actor's batch is done with."""
        with self._cond:
            actor = self._owner.pop(result.task_id, None)
            if actor is not None:
                self._unconsumed[actor] -= 1
                self._cond.notify_all()

    def close(self, abort: bool) -> None:
        """Stop the sites and the actors (and Ray, when this run started it)."""
        ray = self._ray
        stopping = [actor.abort.remote() for actor in self._actors] if abort else []
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            if abort:
                ray.wait(stopping, num_returns=len(stopping), timeout=ABORT_TIMEOUT)
            else:
                leftovers = ray.get(
                    [actor.stop_all.remote() for actor in self._actors], timeout=STOP_TIMEOUT
                )
                for drained in leftovers:
                    self._pass_on(drained)
        except Exception as exc:  # an actor that died or hangs: it is killed below
            log.warning("Ray backend: stopping the sites failed: %s", exc)
        finally:
            # Killing the actors ends any call still waited on, so the threads end too.
            self._shutdown(self._threads)

    def _shutdown(self, threads: Sequence[threading.Thread] = ()) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        for thread in threads:
            thread.join(STOP_TIMEOUT)
        if self._owns:
            self._ray.shutdown()

    # -- the driver threads -------------------------------------------------------------
    def _next_batch(self, actor: int) -> list[_Queued] | None:
        """Wait for the actor's previous batch to be consumed and for tasks; None: closing."""
        queue = self._queues[actor]
        with self._cond:
            while not self._closing and (self._unconsumed[actor] > 0 or not queue):
                self._cond.wait()
            if self._closing:
                return None
            first = queue.popleft()
            limit = max(1, min(MAX_BATCH, BATCH_BYTES // max(first.nbytes, 1)))
            batch = [first]
            while queue and len(batch) < limit and queue[0].data is first.data:
                batch.append(queue.popleft())
        board = self._board
        assert board is not None
        if board.aborted():
            return []
        return [item for item in batch if board.is_outstanding(item.task.id)]

    def _work(self, actor: int) -> None:
        while (batch := self._next_batch(actor)) is not None:
            if not batch:
                continue
            with self._cond:
                self._unconsumed[actor] = len(batch)
                for item in batch:
                    self._owner[item.task.id] = actor
            for result in self._call(actor, batch):
                assert self._board is not None
                if not self._board.submit(result).accepted:
                    self.consumed(result)

    def _call(self, actor: int, batch: list[_Queued]) -> list[TaskResult]:
        """Run ``batch`` on the actor; every failure becomes error results, never a hang."""
        entries = [(i.task.id, i.task.name, i.task.site, self._index[i.task.site]) for i in batch]
        try:
            replies = self._ray.get(self._actors[actor].run.remote(batch[0].data, entries))
        except Exception as exc:
            detail = (
                f"the Ray actor running sites {sorted({i.task.site for i in batch})} failed "
                f"({type(exc).__name__}):\n{exc}"
            )
            return [TaskResult(i.task.id, i.task.name, i.task.site, error=detail) for i in batch]
        results = []
        for item, reply in zip(batch, replies, strict=True):
            task = item.task
            try:
                self._pass_on(reply)
                if reply["error"] is not None:
                    result = TaskResult(task.id, task.name, task.site, error=reply["error"])
                else:
                    data = model_from_plain(reply["model"])
                    result = TaskResult(task.id, task.name, task.site, data=data)
            except Exception as exc:  # a reply this side cannot take: the task failed
                detail = "".join(traceback.format_exception(exc))
                result = TaskResult(task.id, task.name, task.site, error=detail)
            results.append(result)
        return results

    def _pass_on(self, drained: Drained) -> None:
        """Record the metrics the sites logged; print what they printed."""
        logs: list[LogRecord] = drained["logs"]
        for site, key, value, step in logs:
            self._log_sink(site, key, float(value), None if step is None else int(step))
        if drained["stdout"]:
            sys.stdout.write(drained["stdout"])
        if drained["stderr"]:
            sys.stderr.write(drained["stderr"])
