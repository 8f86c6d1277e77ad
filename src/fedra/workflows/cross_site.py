"""Cross-site evaluation: every site's local model and the global model, tested on every site.

The result is a matrix ``{model_owner: {evaluating_site: metrics}}`` saved as
``cross_site_eval.json``. Local models are collected one site at a time and evaluated before
the next is fetched, so the server holds one site model at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from fedra.core import (
    TASK_SUBMIT_MODEL,
    TASK_VALIDATE,
    FLModel,
    JsonCompatible,
    MetricValue,
    Snapshot,
    WorkflowContext,
    WorkflowError,
    readonly,
)
from fedra.workflows._common import GLOBAL, checked, stop_if_aborted

#: ``{model_owner: {evaluating_site: metrics}}``.
Matrix: TypeAlias = dict[str, dict[str, dict[str, MetricValue]]]


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
        self._matrix: Matrix = {}

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
        row: dict[str, dict[str, MetricValue]] = {}
        for result in ctx.fleet.broadcast(TASK_VALIDATE, model, timeout=self.task_timeout):
            row[result.site] = checked(result).metrics
        if not row:
            raise WorkflowError(f"no site evaluated the model of {owner}")
        self._matrix[owner] = row
        ctx.events.round_finished(self.name, len(self._matrix), {"model_owner": owner})
        ctx.checkpoint(self.snapshot())

    @property
    def matrix(self) -> Matrix:
        """The results so far."""
        return self._matrix

    def snapshot(self) -> Snapshot:
        """The rows of the matrix finished so far."""
        return Snapshot(workflow=self.name, state={"matrix": dict(self._matrix)})

    def restore(self, snapshot: Snapshot) -> None:
        """Skip the rows already in ``snapshot``."""
        if snapshot.workflow != self.name:
            raise WorkflowError(f"cannot restore {self.name} from a {snapshot.workflow} snapshot")
        self._matrix = _matrix(snapshot.state.get("matrix", {}))


def _matrix(value: JsonCompatible) -> Matrix:
    """The matrix a snapshot holds; WorkflowError when it is not one."""
    if not isinstance(value, Mapping):
        raise WorkflowError(f"CrossSiteEval snapshot: 'matrix' must be an object, got {value!r}")
    matrix: Matrix = {}
    for owner, row in value.items():
        if not isinstance(row, Mapping):
            raise WorkflowError(f"CrossSiteEval snapshot: row {owner!r} is not an object")
        matrix[owner] = {}
        for site, metrics in row.items():
            if not isinstance(metrics, Mapping):
                raise WorkflowError(
                    f"CrossSiteEval snapshot: metrics of {owner!r} on {site!r} are not an object"
                )
            matrix[owner][site] = {}
            for key, metric in metrics.items():
                if not isinstance(metric, int | float | str):
                    raise WorkflowError(
                        f"CrossSiteEval snapshot: metric {key!r} of {owner!r} on {site!r} must "
                        f"be a number or a string, got {metric!r}"
                    )
                matrix[owner][site][key] = metric
    return matrix
