"""A synchronous federation for workflow tests: the real TaskBoard, RunStore and EventLog.

Each site is a plain Python function per task name, ``fn(site, model) -> FLModel``. The board's
``deliver`` runs it at once and submits the answer with ``board.submit``; a site function that
raises is answered with an error result carrying the traceback, and one that returns
:data:`SILENT` never answers.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from fedra.core import FLModel, Snapshot, Task, TaskResult, WorkflowContext
from fedra.serverapp import EventLog, RunStore, TaskBoard, Verdict

SiteFn = Callable[[str, FLModel], object]

#: Returned by a site function that does not answer its task.
SILENT = object()


def site_number(site: str) -> int:
    """``site-3`` -> 3."""
    return int(site.rsplit("-", 1)[1])


class Federation:
    """Sites answering synchronously through a real TaskBoard."""

    def __init__(
        self,
        sites: Sequence[str],
        handlers: dict[str, SiteFn],
        root: Path,
    ) -> None:
        self.handlers = handlers
        self.delivered: list[Task] = []
        self.verdicts: list[Verdict] = []
        self.board = TaskBoard(sites, self._deliver, job_id="test-job")
        self.store = RunStore(root)
        self.events = EventLog()
        self.snapshots: list[Snapshot] = []

    def _deliver(self, task: Task) -> None:
        self.delivered.append(task)
        handler = self.handlers[task.name]
        try:
            answer = handler(task.site, task.data)
        except Exception:
            result = TaskResult(task.id, task.name, task.site, error=traceback.format_exc())
        else:
            if answer is SILENT:
                return
            assert isinstance(answer, FLModel)
            result = TaskResult(task.id, task.name, task.site, data=answer)
        self.verdicts.append(self.board.submit(result))

    def record(self, snapshot: Snapshot) -> None:
        """A checkpoint sink that keeps every snapshot in memory."""
        self.snapshots.append(snapshot)

    def context(
        self,
        initial: FLModel | None = None,
        checkpoint: Callable[[Snapshot], None] | None = None,
        key_metric: str = "accuracy",
        higher_is_better: bool = True,
    ) -> WorkflowContext:
        ctx = WorkflowContext(
            fleet=self.board,
            store=self.store,
            events=self.events,
            checkpoint=checkpoint or self.record,
            key_metric=key_metric,
            higher_is_better=higher_is_better,
        )
        if initial is not None:
            ctx.shared["global"] = initial
        return ctx

    def rounds_sent(self, task_name: str) -> list[int | None]:
        """``current_round`` of every task named ``task_name`` delivered so far."""
        return [t.data.current_round for t in self.delivered if t.name == task_name]
