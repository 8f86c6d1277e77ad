"""Cyclic weight transfer: the model visits the sites one after another, round after round."""

from __future__ import annotations

import random

from fedra.aggregators import apply_update
from fedra.core import (
    TASK_TRAIN,
    FLModel,
    Params,
    Snapshot,
    WorkflowContext,
    WorkflowError,
    readonly,
)
from fedra.workflows._common import (
    GLOBAL,
    checked,
    params_or_empty,
    positive_int,
    state_round,
    stop_if_aborted,
)


class Cyclic:
    """Pass the model from site to site, ``num_rounds`` times around the ring."""

    name = "Cyclic"

    def __init__(
        self,
        num_rounds: int = 3,
        order: str = "fixed",
        seed: int = 0,
        task_timeout: float = 0.0,
    ) -> None:
        self.num_rounds = positive_int("num_rounds", num_rounds)
        if order not in ("fixed", "random"):
            raise ValueError(f"order must be 'fixed' or 'random', got {order!r}")
        self.order = order
        self.seed = seed
        self.task_timeout = float(task_timeout) or None
        self._round = 0
        self._model: Params | None = None
        self._restored = False

    def _order(self, sites: list[str], round_num: int) -> list[str]:
        if self.order == "fixed":
            return sites
        shuffled = list(sites)
        random.Random(self.seed * 100_003 + round_num).shuffle(shuffled)
        return shuffled

    def run(self, ctx: WorkflowContext) -> None:
        """Run the remaining rounds."""
        if not self._restored:
            self._model = params_or_empty(ctx.shared.pop(GLOBAL, None)) or None
        for round_num in range(self._round + 1, self.num_rounds + 1):
            sites = ctx.fleet.sites()
            if not sites:
                raise WorkflowError(f"round {round_num}: no sites connected")
            ctx.events.round_started(self.name, round_num, self.num_rounds, len(sites))
            metrics: dict[str, float | int | str] = {}
            for site in self._order(sites, round_num):
                stop_if_aborted(ctx)
                sent = FLModel(
                    params=readonly(self._model) if self._model is not None else None,
                    current_round=round_num,
                    total_rounds=self.num_rounds,
                )
                result = checked(
                    ctx.fleet.send(TASK_TRAIN, sent, site, timeout=self.task_timeout),
                    need_params=True,
                )
                self._model = apply_update(self._model or {}, result)
                metrics = dict(result.metrics)
                ctx.events.result_received(self.name, round_num, site)
            ctx.store.save(
                f"round-{round_num:03d}",
                FLModel(params=self._model, metrics=metrics, current_round=round_num),
            )
            self._round = round_num
            ctx.events.round_finished(self.name, round_num, metrics)
            ctx.checkpoint(self.snapshot())
        final = FLModel(params=self._model, current_round=self.num_rounds)
        if self._model is not None:
            ctx.store.save("final", final)
        ctx.shared[GLOBAL] = final

    def snapshot(self) -> Snapshot:
        """Round reached and the model."""
        return Snapshot(
            workflow=self.name,
            state={"round": self._round},
            arrays=dict(self._model or {}),
            arrays_ref=f"round-{self._round:03d}" if self._round else None,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Resume after the round recorded in ``snapshot``."""
        if snapshot.workflow != self.name:
            raise WorkflowError(f"cannot restore {self.name} from a {snapshot.workflow} snapshot")
        self._round = state_round(snapshot)
        self._model = dict(snapshot.arrays) or None
        self._restored = True
