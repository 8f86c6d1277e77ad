"""The seam between the simulator's server side and its sites, and how one site is built.

The TaskBoard hands tasks to a :class:`SiteBackend` and gets results back from it. Two
backends exist: worker threads running every site in this process (the default, in
``runner.py``) and Ray actors (``ray_backend.py``). Both build a site with
:func:`build_site_runner`, so a site runs the same executors and filter chains either way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from fedra.client import SiteContext, SiteRunner
from fedra.core import Task, TaskResult
from fedra.filters import wrap_chains
from fedra.job import JobDefinition, build_executors, build_filters
from fedra.serverapp import TaskBoard

#: The names ``simulate(backend=...)`` and ``fedra simulate --backend`` accept.
BACKENDS = ("thread", "ray")

#: ``(site, key, value, step)``: where the metrics a site logs go (the run's MetricsSink).
LogSink = Callable[[str, str, float, int | None], None]


class SiteBackend(Protocol):
    """Where the simulated sites run their tasks."""

    def bind(self, board: TaskBoard) -> None:
        """Submit results to ``board`` (created after the backend, from its callbacks)."""
        ...

    def deliver(self, task: Task) -> None:
        """Run ``task`` on its site; the result goes to the board."""
        ...

    def deliver_many(self, tasks: list[Task]) -> None:
        """Run the tasks of one broadcast (they share their data)."""
        ...

    def consumed(self, result: TaskResult) -> None:
        """The workflow is done with ``result``: room for another one (back-pressure)."""
        ...

    def close(self, abort: bool) -> None:
        """Stop every site (promptly when ``abort``). Called once, also after a failure."""
        ...


def build_site_runner(
    definition: JobDefinition,
    site: str,
    index: int,
    num_sites: int,
    job_id: str,
    workdir: Path,
    log_sink: LogSink,
    startup_dir: Path | None = None,
) -> SiteRunner:
    """The SiteRunner of ``site``: its app's executors and the job's filter chains.

    ``startup_dir``: the site's kit ``startup/`` folder (keys its filters read), if any.
    """
    app = definition.client_app(site)
    assert app is not None
    ctx = SiteContext(
        site_name=site,
        site_index=index,
        num_sites=num_sites,
        job_id=job_id,
        workdir=workdir,
        custom_dir=app.custom_dir,
        log_sink=log_sink,
        startup_dir=startup_dir,
    )
    job_data, job_result = build_filters(app)
    return SiteRunner(
        ctx,
        build_executors(app),
        data_chain=wrap_chains([], job_data, "task_data") if job_data else None,
        result_chain=wrap_chains([], job_result, "task_result") if job_result else None,
    )
