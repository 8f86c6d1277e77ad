"""FedAvg (scatter and gather): broadcast the global model, average what comes back.

Each result is folded into a running weighted sum as it arrives (weights: the number of
samples each site reports), so server memory does not grow with the number of sites.
After the last round the final model is validated on every site, so the run ends with the
accuracy of the model it actually produced.

Optionally each round's results go through a robust rule instead (``aggregator``: see
:data:`fedra.aggregators.AGGREGATORS`), and each round trains only a reproducible random
sample of the sites (``sample_fraction``, ``sample_seed``).

With ``aggregator: he_weighted`` the sites send CKKS-encrypted full models and the global
model stays encrypted on the server: FedAvg only stores it and sends it on (training, the
final validation, the best model), never computes on it; sites decrypt it (``HEDecrypt``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from fedra.aggregators import (
    AGGREGATORS,
    WeightedAggregator,
    apply_update,
    make_aggregator,
    start_round,
    use_keys,
)
from fedra.core import (
    TASK_TRAIN,
    TASK_VALIDATE,
    FLModel,
    JsonCompatible,
    Params,
    Snapshot,
    WorkflowContext,
    WorkflowError,
    readonly,
)
from fedra.workflows._common import (
    GLOBAL,
    checked,
    is_better,
    params_or_empty,
    positive_int,
    state_number,
    state_round,
    stop_if_aborted,
)


class FedAvg:
    """Federated averaging over ``num_rounds`` rounds."""

    name = "FedAvg"

    def __init__(
        self,
        num_rounds: int = 5,
        min_clients: int = 1,
        wait_time_after_min_received: float = 10.0,
        task_timeout: float = 0.0,
        key_metric: str | None = None,
        higher_is_better: bool | None = None,
        final_validation: bool = True,
        train_task_name: str = TASK_TRAIN,
        aggregator: str = "weighted",
        aggregator_args: Mapping[str, JsonCompatible] | None = None,
        sample_fraction: float = 1.0,
        sample_seed: int = 0,
    ) -> None:
        self.num_rounds = positive_int("num_rounds", num_rounds)
        self.min_clients = positive_int("min_clients", min_clients)
        if wait_time_after_min_received < 0 or task_timeout < 0:
            raise ValueError("wait_time_after_min_received and task_timeout must be >= 0")
        self.wait_after_min = float(wait_time_after_min_received)
        self.task_timeout = float(task_timeout) or None
        self.key_metric = key_metric
        self.higher_is_better = higher_is_better
        self.final_validation = final_validation
        self.train_task_name = train_task_name
        if aggregator not in AGGREGATORS:
            raise ValueError(
                f"unknown aggregator {aggregator!r}; choose one of {sorted(AGGREGATORS)}"
            )
        self.aggregator = aggregator
        self.aggregator_args = dict(aggregator_args or {})
        make_aggregator(self.aggregator, **self.aggregator_args)  # bad args fail here, not later
        if getattr(AGGREGATORS[aggregator], "encrypted", False) and (
            type(self)._next_global is not FedAvg._next_global
        ):
            raise ValueError(
                f"{self.name} computes on the global model, which aggregator {aggregator!r} "
                "keeps encrypted on the server: use it with FedAvg"
            )
        if isinstance(sample_fraction, bool) or not 0 < sample_fraction <= 1:
            raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction!r}")
        self.sample_fraction = float(sample_fraction)
        if isinstance(sample_seed, bool) or not isinstance(sample_seed, int):
            raise ValueError(f"sample_seed must be an integer, got {sample_seed!r}")
        self.sample_seed = sample_seed
        self._round = 0
        self._global: Params | None = None
        self._best: float | None = None
        self._restored = False

    def run(self, ctx: WorkflowContext) -> None:
        """Run the remaining rounds, then validate the final model."""
        if self.key_metric is None:
            self.key_metric = ctx.key_metric
        if self.higher_is_better is None:
            self.higher_is_better = ctx.higher_is_better
        if not self._restored:
            self._global = params_or_empty(ctx.shared.pop(GLOBAL, None)) or None
        for round_num in range(self._round + 1, self.num_rounds + 1):
            stop_if_aborted(ctx)
            self._run_round(ctx, round_num)
        final = FLModel(params=self._global, current_round=self.num_rounds)
        if self.final_validation and self._global is not None:
            metrics = self._validate(ctx, final)
            final.metrics = metrics
            if is_better(
                metrics.get(self.key_metric or ""), self._best, self.higher_is_better is not False
            ):
                self._best = float(metrics[self.key_metric or ""])
                ctx.store.save("best", final)
        if self._global is not None:
            ctx.store.save("final", final)
        ctx.shared[GLOBAL] = final

    def _run_round(self, ctx: WorkflowContext, round_num: int) -> None:
        targets = ctx.fleet.sites()
        if len(targets) < self.min_clients:
            raise WorkflowError(
                f"round {round_num}: {len(targets)} sites connected, "
                f"min_clients is {self.min_clients}"
            )
        targets = self._sample(targets, round_num)
        if self._global is not None:
            # Out of memory while the results come in (a server job keeps it on disk): the
            # round's sum is then the only model-sized buffer here.
            self._global = ctx.park(self._global)
        trained_from = self._global  # the model the sites train from (the candidate best)
        sent = self._train_data(round_num)
        ctx.events.round_started(self.name, round_num, self.num_rounds, len(targets))
        aggregator = make_aggregator(self.aggregator, **self.aggregator_args)
        start_round(aggregator, sent)
        use_keys(aggregator, ctx.startup_dir)
        results = ctx.fleet.broadcast(
            self.train_task_name,
            sent,
            targets,
            min_responses=self.min_clients,
            wait_after_min=self.wait_after_min,
            timeout=self.task_timeout,
        )
        for result in results:
            aggregator.accept(checked(result, need_params=True))
            ctx.events.result_received(self.name, round_num, result.site)
            del result  # folded in: let it go before waiting for the next one
        if aggregator.count < self.min_clients:
            raise WorkflowError(
                f"round {round_num}: {aggregator.count} results arrived, "
                f"min_clients is {self.min_clients}"
            )
        update = aggregator.result()
        metrics = update.metrics
        # Sites report metrics of the model they received: that model is the candidate best.
        if trained_from is not None and is_better(
            metrics.get(self.key_metric or ""), self._best, self.higher_is_better is not False
        ):
            self._best = float(metrics[self.key_metric or ""])
            best = FLModel(
                params=readonly(trained_from), metrics=metrics, current_round=round_num - 1
            )
            ctx.store.save("best", best)
        self._global = self._next_global(update)
        # The metrics of this round describe the model the sites received, not the new one.
        received = f"round-{round_num - 1:03d}" if round_num > 1 else "initial"
        ctx.store.save(
            f"round-{round_num:03d}",
            FLModel(
                params=self._global,
                current_round=round_num,
                meta={"site_metrics": metrics, "site_metrics_describe": received},
            ),
        )
        self._round = round_num
        ctx.events.round_finished(self.name, round_num, metrics)
        ctx.checkpoint(self.snapshot())

    def _train_data(self, round_num: int) -> FLModel:
        """The task data of ``round_num``'s training task: the global model (a subclass may add
        params or meta for its sites, as SCAFFOLD and FedProx do)."""
        return FLModel(
            params=readonly(self._global) if self._global is not None else None,
            current_round=round_num,
            total_rounds=self.num_rounds,
        )

    def _sample(self, sites: list[str], round_num: int) -> list[str]:
        """The sites that train in ``round_num``: all of them unless ``sample_fraction < 1``,
        else ``round(max(min_clients, fraction * len(sites)))`` drawn by a generator seeded
        from ``sample_seed`` and the round (reproducible, whatever the order of the sites)."""
        if self.sample_fraction >= 1:
            return sites
        count = min(len(sites), round(max(self.min_clients, self.sample_fraction * len(sites))))
        rng = random.Random(self.sample_seed * 1_000_003 + round_num)
        return sorted(rng.sample(sorted(sites), count))

    def _next_global(self, update: FLModel) -> Params:
        """The global model after a round: the aggregate (a server optimizer overrides this)."""
        return apply_update(self._global or {}, update)

    def _validate(self, ctx: WorkflowContext, model: FLModel) -> dict[str, float | int | str]:
        assert model.params is not None
        sent = FLModel(
            params=readonly(model.params),
            current_round=model.current_round,
            total_rounds=self.num_rounds,
        )
        aggregator = WeightedAggregator()
        for result in ctx.fleet.broadcast(
            TASK_VALIDATE,
            sent,
            min_responses=self.min_clients,
            wait_after_min=self.wait_after_min,
            timeout=self.task_timeout,
        ):
            data = checked(result)
            aggregator.accept(FLModel(metrics=data.metrics, meta=data.meta))
        metrics = aggregator.metrics()
        ctx.events.round_finished(f"{self.name} (final validation)", self.num_rounds, metrics)
        return metrics

    def snapshot(self) -> Snapshot:
        """Round reached, best metric so far, and the global model."""
        return Snapshot(
            workflow=self.name,
            state={"round": self._round, "best": self._best, "num_rounds": self.num_rounds},
            arrays=dict(self._global or {}),
            arrays_ref=f"round-{self._round:03d}" if self._round else None,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Resume after the round recorded in ``snapshot``."""
        if snapshot.workflow != self.name:
            raise WorkflowError(f"cannot restore {self.name} from a {snapshot.workflow} snapshot")
        self._round = state_round(snapshot)
        self._best = state_number(snapshot, "best")
        self._global = dict(snapshot.arrays) or None
        self._restored = True
