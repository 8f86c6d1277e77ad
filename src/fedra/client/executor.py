"""The site side of a job: the Executor interface, the site's context, and the SiteRunner.

A SiteRunner turns a Task into a TaskResult with the executor configured for the task name;
whatever the executor raises becomes an error result carrying the site's traceback, so a
failure is reported to the server instead of hanging it.
"""

from __future__ import annotations

import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fedra.core import FLModel, SiteError, Task, TaskResult

LogSink = Callable[[str, str, float, int | None], None]
"""``(site, key, value, step)``: where ``fedra.client.log`` metrics go."""


def _drop(site: str, key: str, value: float, step: int | None) -> None:
    del site, key, value, step


@dataclass
class SiteContext:
    """What a site's executors know about where they run."""

    site_name: str
    site_index: int
    num_sites: int
    job_id: str = ""
    workdir: Path = field(default_factory=Path.cwd)
    custom_dir: Path | None = None
    log_sink: LogSink = _drop
    abort: threading.Event = field(default_factory=threading.Event)
    #: How a ScriptExecutor without an explicit ``launch`` runs its script: in process when
    #: simulating, as its own process once sites are real processes.
    default_launch: str = "in_process"
    #: Whether script processes get a process group of their own (the simulator ends them
    #: one by one); a site job process keeps them in its group, so ending the group ends all.
    own_process_group: bool = True
    #: The site's ``startup/`` folder (its kit): key material the site holds, such as its HE
    #: context, read by filters. None when the site has no kit (a simulator run without kits).
    startup_dir: Path | None = None

    def log(self, key: str, value: float, step: int | None = None) -> None:
        """Send a scalar metric to the server's tracking."""
        self.log_sink(self.site_name, key, value, step)


class Executor(ABC):
    """Runs the tasks of one job on one site."""

    def start(self, ctx: SiteContext) -> None:  # noqa: B027 - optional hook
        """Prepare (load data, start a training script). Called once before the first task."""

    @abstractmethod
    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        """Do one task and return its result. Raise to report a failure."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release everything started in :meth:`start`. Called once, also after a failure."""


class SiteRunner:
    """Dispatches tasks to the executor configured for their name."""

    def __init__(
        self,
        ctx: SiteContext,
        executors: Sequence[tuple[Sequence[str], Executor]],
        data_chain: Callable[[FLModel, Any], FLModel] | None = None,
        result_chain: Callable[[FLModel, Any], FLModel] | None = None,
    ):
        """``data_chain`` filters what the site receives, ``result_chain`` what it sends back
        (the job's filters wrapped by the site's mandatory ones; see fedra.filters)."""
        self.ctx = ctx
        self._data_chain = data_chain
        self._result_chain = result_chain
        self._rng = np.random.default_rng()
        self._routes = [(tuple(tasks), executor) for tasks, executor in executors]
        self._started: list[Executor] = []
        self._lock = threading.Lock()

    def executor_for(self, task_name: str) -> Executor | None:
        """The executor handling ``task_name`` ('*' matches every task)."""
        for tasks, executor in self._routes:
            if task_name in tasks or "*" in tasks:
                return executor
        return None

    def handle(self, task: Task) -> TaskResult:
        """Run ``task``; an exception becomes an error result with the traceback."""
        with self._lock:  # a site works on one task at a time
            try:
                executor = self.executor_for(task.name)
                if executor is None:
                    raise LookupError(f"no executor for task '{task.name}' on {self.ctx.site_name}")
                if executor not in self._started:
                    self._started.append(executor)
                    executor.start(self.ctx)
                received = task.data
                if self._data_chain is not None:
                    received = self._data_chain(received, self._filter_ctx(task, "task_data"))
                data = executor.execute(task.name, received, self.ctx)
                if not isinstance(data, FLModel):
                    raise TypeError(
                        f"executor returned {type(data).__name__}, expected fedra.FLModel"
                    )
                if self._result_chain is not None:
                    data = self._result_chain(data, self._filter_ctx(task, "task_result"))
                return TaskResult(task.id, task.name, self.ctx.site_name, data=data)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit) and not self.ctx.abort.is_set():
                    raise
                if isinstance(exc, SiteError) and exc.detail:
                    detail = exc.detail  # already the site's own traceback (the script's)
                else:
                    detail = "".join(traceback.format_exception(exc))
                return TaskResult(task.id, task.name, self.ctx.site_name, error=detail)

    def _filter_ctx(self, task: Task, direction: Literal["task_data", "task_result"]) -> Any:
        from fedra.filters import FilterContext

        return FilterContext(
            self.ctx.site_name,
            task.name,
            direction,
            task.data.current_round,
            self._rng,
            startup_dir=self.ctx.startup_dir,
        )

    def stop(self) -> list[str]:
        """Stop every started executor; returns the tracebacks of those that failed to stop."""
        errors = []
        for executor in reversed(self._started):
            try:
                executor.stop()
            except Exception as exc:
                errors.append("".join(traceback.format_exception(exc)))
        self._started.clear()
        return errors
