"""Cross-site evaluation: every site's local model and the global model, tested on every site.

The result is a matrix ``{model_owner: {evaluating_site: metrics}}`` saved as
``cross_site_eval.json``. Local models are collected one site at a time and evaluated before
the next is fetched, so the server holds one site model at a time.
"""

from __future__ import annotations

from typing import Any

from fedra.core import (
    TASK_SUBMIT_MODEL,
    TASK_VALIDATE,
    FLModel,
    Snapshot,
    WorkflowContext,
    WorkflowError,
    readonly,
)
from fedra.workflows._common import GLOBAL, checked, stop_if_aborted


class CrossSiteEval:
    """Evaluate each site's model and the global model on every site."""

    name = "CrossSiteEval"

    def __init__(
        self, task_timeout: float = 0.0, evaluate_global: bool = True, evaluate_local: bool = True
    ) -> None:
        if task_timeout < 0:
            raise ValueError("task_timeout must be >= 0")
        self.task_timeout = float(task_timeout) or None
        self.evaluate_global = evaluate_global
        self.evaluate_local = evaluate_local
        self._matrix: dict[str, dict[str, Any]] = {}

    def run(self, ctx: WorkflowContext) -> None:
        """Fill the matrix (skipping owners a restored snapshot already covers) and save it."""
        sites = ctx.fleet.sites()
        if self.evaluate_global:
            global_model = ctx.shared.get(GLOBAL)
            if (
                global_model is not None
                and global_model.params is not None
                and (GLOBAL not in self._matrix)
            ):
                self._evaluate(ctx, GLOBAL, FLModel(params=readonly(global_model.params)))
        if self.evaluate_local:
            for owner in sites:
                if owner in self._matrix:
                    continue
                stop_if_aborted(ctx)
                result = ctx.fleet.send(
                    TASK_SUBMIT_MODEL, FLModel(), owner, timeout=self.task_timeout
                )
                local = checked(result, need_params=True)
                assert local.params is not None
                self._evaluate(ctx, owner, FLModel(params=readonly(local.params)))
        ctx.store.save_json("cross_site_eval", {"matrix": self._matrix, "sites": sites})

    def _evaluate(self, ctx: WorkflowContext, owner: str, model: FLModel) -> None:
        model.meta["model_owner"] = owner
        sites = ctx.fleet.sites()
        ctx.events.round_started(self.name, len(self._matrix) + 1, len(sites) + 1, len(sites))
        row: dict[str, Any] = {}
        for result in ctx.fleet.broadcast(TASK_VALIDATE, model, timeout=self.task_timeout):
            row[result.site] = checked(result).metrics
        if not row:
            raise WorkflowError(f"no site evaluated the model of {owner}")
        self._matrix[owner] = row
        ctx.events.round_finished(self.name, len(self._matrix), {"model_owner": owner})
        ctx.checkpoint(self.snapshot())

    @property
    def matrix(self) -> dict[str, dict[str, Any]]:
        """The results so far."""
        return self._matrix

    def snapshot(self) -> Snapshot:
        """The rows of the matrix finished so far."""
        return Snapshot(workflow=self.name, state={"matrix": dict(self._matrix)})

    def restore(self, snapshot: Snapshot) -> None:
        """Skip the rows already in ``snapshot``."""
        if snapshot.workflow != self.name:
            raise WorkflowError(f"cannot restore {self.name} from a {snapshot.workflow} snapshot")
        self._matrix = dict(snapshot.state.get("matrix", {}))
