"""ServerRun: runs a job's workflows in order against a Fleet, recording what happens.

The same class drives the simulator and the server's job process. It owns the job
lifecycle (RUNNING -> FINISHED:*), saves each workflow's snapshot after every round, and can
resume from the latest snapshot after a restart.

The run's history (one :class:`RoundRecord` per finished round, of every workflow, in order)
is saved with each snapshot and restored with it, so a resumed run's history starts where
the snapshot's left off: rounds recorded after the last snapshot (an interrupted round that
was recorded just before the crash, a final validation) are run again and their new records
take the old ones' places. A job's history lists every round once, whatever the restarts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from fedra.core import (
    FedraError,
    Fleet,
    FLModel,
    JobLifecycle,
    JobStatus,
    JsonObject,
    JsonValue,
    MetricValue,
    Params,
    RunAborted,
    SiteError,
    Snapshot,
    Workflow,
    WorkflowContext,
)
from fedra.serverapp.runstore import RunStore

log = logging.getLogger(__name__)


@dataclass
class RoundRecord:
    """One finished round, for the run summary."""

    workflow: str
    round: int
    metrics: dict[str, MetricValue]
    seconds: float

    def as_json(self) -> JsonObject:
        """The record as stored in snapshots, ``run_info["rounds"]`` and the run summary."""
        return {
            "workflow": self.workflow,
            "round": self.round,
            "metrics": dict(self.metrics),
            "seconds": round(self.seconds, 4),
        }


def records_from_json(values: Sequence[JsonValue]) -> list[RoundRecord]:
    """The records :meth:`RoundRecord.as_json` wrote; a malformed one is logged and skipped."""
    records: list[RoundRecord] = []
    for value in values:
        try:
            records.append(msgspec.convert(value, type=RoundRecord))
        except msgspec.ValidationError as exc:
            log.warning("a round record of the snapshot is malformed (%s): skipped", exc)
    return records


@dataclass
class EventLog:
    """Events implementation that records rounds and forwards to an optional display."""

    display: Any = None
    #: The run's history: every finished round, restored with the snapshot on resume.
    rounds: list[RoundRecord] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic)

    def round_started(self, workflow: str, round_num: int, total_rounds: int, sites: int) -> None:
        """Remember when the round began."""
        self._started = time.monotonic()
        log.info("%s round %d/%d: sent to %d sites", workflow, round_num, total_rounds, sites)
        if self.display is not None:
            self.display.round_started(workflow, round_num, total_rounds, sites)

    def result_received(self, workflow: str, round_num: int, site: str) -> None:
        """Forward progress."""
        if self.display is not None:
            self.display.result_received(workflow, round_num, site)

    def round_finished(
        self, workflow: str, round_num: int, metrics: Mapping[str, MetricValue]
    ) -> None:
        """Record the round with its duration."""
        seconds = time.monotonic() - self._started
        self.rounds.append(RoundRecord(workflow, round_num, dict(metrics), seconds))
        log.info("%s round %d done in %.3f s: %s", workflow, round_num, seconds, dict(metrics))
        if self.display is not None:
            self.display.round_finished(workflow, round_num, metrics)


@dataclass
class RunOutcome:
    """How a run ended."""

    status: JobStatus
    error: str | None = None
    failed_site: str | None = None
    failed_task: str | None = None
    site_traceback: str | None = None
    final: FLModel | None = None


class ServerRun:
    """Runs ``workflows`` one after another with a shared context."""

    def __init__(
        self,
        workflows: Sequence[Workflow],
        fleet: Fleet,
        store: RunStore,
        events: EventLog,
        initial: FLModel | None = None,
        lifecycle: JobLifecycle | None = None,
        key_metric: str = "accuracy",
        higher_is_better: bool = True,
        startup_dir: Path | None = None,
        park: Callable[[Params], Params] | None = None,
    ) -> None:
        """``startup_dir``: the server's startup folder, handed to the workflows (keys);
        ``park``: see :attr:`fedra.core.WorkflowContext.park` (None: keep params in memory)."""
        self.startup_dir = startup_dir
        self.park = park
        self.key_metric = key_metric
        self.higher_is_better = higher_is_better
        self.workflows = list(workflows)
        self.fleet = fleet
        self.store = store
        self.events = events
        self.initial = initial
        self.lifecycle = lifecycle or JobLifecycle()
        self._index = 0

    def _checkpoint(self, snapshot: Snapshot) -> None:
        history = [r.as_json() for r in self.events.rounds]
        self.store.save_snapshot(self._index, snapshot, history=history)

    def run(self, resume: bool = False) -> RunOutcome:
        """Run to the end; every failure becomes a final status with its cause."""
        if self.lifecycle.status == JobStatus.SUBMITTED:
            self.lifecycle.move(JobStatus.DISPATCHED, "dispatched")
        self.lifecycle.move(JobStatus.RUNNING, "resumed" if resume else "started")
        ctx = WorkflowContext(
            fleet=self.fleet,
            store=self.store,
            events=self.events,
            checkpoint=self._checkpoint,
            key_metric=self.key_metric,
            higher_is_better=self.higher_is_better,
            startup_dir=self.startup_dir,
        )
        if self.park is not None:
            ctx.park = self.park
        start = 0
        if self.initial is not None:
            ctx.shared["global"] = self.initial
            self.initial = None  # the workflow owns it now; keep no second reference
        saved = self.store.load_snapshot() if resume else None
        if resume:
            # The history the snapshot covers; what came after it is recorded again.
            self.events.rounds = records_from_json(self.store.load_history())
        if saved is not None:
            start, snapshot = saved
            self.workflows[start].restore(snapshot)
            final = self.store.load_model("final")
            if start > 0 and final is not None:
                ctx.shared["global"] = final
        try:
            for index in range(start, len(self.workflows)):
                self._index = index
                self.workflows[index].run(ctx)
        except RunAborted as exc:
            self.lifecycle.move(JobStatus.FINISHED_ABORTED, str(exc))
            return RunOutcome(JobStatus.FINISHED_ABORTED, error=str(exc))
        except SiteError as exc:
            self.lifecycle.move(JobStatus.FINISHED_EXECUTION_EXCEPTION, str(exc))
            return RunOutcome(
                JobStatus.FINISHED_EXECUTION_EXCEPTION,
                error=str(exc),
                failed_site=exc.site,
                failed_task=exc.task,
                site_traceback=exc.detail,
            )
        except (FedraError, ValueError, TypeError, KeyError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.lifecycle.move(JobStatus.FINISHED_EXECUTION_EXCEPTION, reason)
            return RunOutcome(JobStatus.FINISHED_EXECUTION_EXCEPTION, error=reason)
        self.lifecycle.move(JobStatus.FINISHED_COMPLETED, "all workflows finished")
        return RunOutcome(JobStatus.FINISHED_COMPLETED, final=ctx.shared.get("global"))
