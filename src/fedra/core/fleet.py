"""The contracts between a workflow and the runtime around it.

Workflows are pure: they never touch sockets, threads or files. They talk to the sites through
a :class:`Fleet`, store models through a :class:`ModelStore`, and report progress through
:class:`Events`. The simulator and the networked server provide these with the same meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fedra.core.json_types import JsonCompatible
from fedra.core.model import Array, FLModel, MetricValue, Params
from fedra.core.task import TaskResult


class Fleet(Protocol):
    """The sites of a run, as a workflow sees them."""

    def sites(self) -> list[str]:
        """Names of the sites taking part, in a stable order."""
        ...

    def broadcast(
        self,
        task_name: str,
        data: FLModel,
        targets: Sequence[str] | None = None,
        *,
        min_responses: int | None = None,
        wait_after_min: float = 0.0,
        timeout: float | None = None,
    ) -> Iterator[TaskResult]:
        """Send a task to ``targets`` (default: all sites) and yield results as they arrive.

        Stops yielding once every target answered, or ``wait_after_min`` seconds after
        ``min_responses`` answered, or after ``timeout`` seconds. Results arriving later for
        this task are refused. Results are yielded in the caller's thread, one at a time, so
        an aggregator can fold each one in and drop it.
        """
        ...

    def send(
        self, task_name: str, data: FLModel, target: str, *, timeout: float | None = None
    ) -> TaskResult:
        """Send one task to one site and wait for its result."""
        ...

    def aborted(self) -> bool:
        """True once the run has been asked to stop."""
        ...


class ModelStore(Protocol):
    """Where a workflow keeps the models it produces (files, a job store …)."""

    def save(self, name: str, model: FLModel) -> None:
        """Save ``model`` under ``name`` (such as ``round-003``, ``best``, ``final``)."""
        ...

    def save_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Save a JSON document (such as the cross-site evaluation matrix)."""
        ...


class Events(Protocol):
    """Progress reports from a workflow, shown to users and recorded in the run summary."""

    def round_started(self, workflow: str, round_num: int, total_rounds: int, sites: int) -> None:
        """A round began: ``sites`` tasks were sent."""
        ...

    def result_received(self, workflow: str, round_num: int, site: str) -> None:
        """One site's result was accepted."""
        ...

    def round_finished(
        self, workflow: str, round_num: int, metrics: Mapping[str, MetricValue]
    ) -> None:
        """A round ended with these aggregated metrics."""
        ...


@dataclass
class Snapshot:
    """A workflow's state at a round boundary: JSON-compatible state plus named arrays."""

    workflow: str
    state: Mapping[str, JsonCompatible] = field(default_factory=dict)
    arrays: dict[str, Array] = field(default_factory=dict)
    #: The name of a model already saved in the ModelStore that holds exactly ``arrays``:
    #: a store may keep the reference instead of writing the arrays a second time.
    arrays_ref: str | None = None


class SnapshotSink(Protocol):
    """Receives a workflow's snapshot after every completed round."""

    def __call__(self, snapshot: Snapshot) -> None:
        """Persist ``snapshot``; the run resumes from the latest one after a restart."""
        ...


@dataclass
class WorkflowContext:
    """Everything a workflow may use while it runs."""

    fleet: Fleet
    store: ModelStore
    events: Events
    checkpoint: SnapshotSink
    #: The global model handed from one workflow of a job to the next one.
    shared: dict[str, FLModel] = field(default_factory=dict)
    #: The metric that picks the best global model (from the job's persistor config).
    key_metric: str = "accuracy"
    higher_is_better: bool = True
    #: The server's ``startup/`` folder (its kit), where server-held keys live (the
    #: he_weighted aggregator reads the public HE context there); None without a kit.
    startup_dir: Path | None = None
    #: Moves params a workflow keeps but will not compute on for a while (the global model
    #: while a round's results come in) out of process memory, returning read-only params
    #: with the same values (a server job maps them from a file on disk); the default keeps
    #: them as they are.
    park: Callable[[Params], Params] = field(default=lambda params: params)


class Workflow(Protocol):
    """A server-side control flow (FedAvg, cross-site evaluation, cyclic …)."""

    name: str

    def run(self, ctx: WorkflowContext) -> None:
        """Drive the sites until done. Raises a FedraError on failure."""
        ...

    def snapshot(self) -> Snapshot:
        """The state to resume from, taken at a round boundary."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Continue from ``snapshot`` on the next :meth:`run`."""
        ...
