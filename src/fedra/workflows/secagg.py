"""SecAggFedAvg: FedAvg in which the server learns only the sum of the sites' updates.

Each round runs the four stages of secure aggregation (:mod:`fedra.secagg`) as ordinary
tasks: ``secagg_advertise`` (public keys), ``secagg_share_keys`` (Shamir shares of each
site's secrets, encrypted for its neighbours and routed through the server),
``secagg_masked_input`` (the global model goes out; each site trains, and sends its update
quantized and masked) and ``secagg_unmask`` (shares that let the server remove the masks).
The masked inputs are summed as they arrive; what comes out is the (weighted) average
update, applied to the global model like FedAvg's.

Sites run :class:`fedra.client.SecAggClient` (in a job config: ``SecAggScriptExecutor``).
A site that fails or does not answer a stage drops out of the round; the round completes as
long as every secret still has ``threshold`` surviving holders and at least
``max(min_clients, threshold)`` masked inputs arrived. The training metrics travel in the
clear and are averaged with equal weights (the sites' sample counts stay secret).
"""

from __future__ import annotations

import logging
from typing import Any

from fedra.aggregators import WeightedAggregator
from fedra.core import FLModel, ParamsType, WorkflowContext, WorkflowError, readonly
from fedra.secagg import (
    TASK_ADVERTISE,
    TASK_MASKED_INPUT,
    TASK_SHARE_KEYS,
    TASK_UNMASK,
    SecAggConfig,
    SecAggError,
    SecAggServer,
    split_vector,
    vector_length,
)
from fedra.workflows._common import is_better
from fedra.workflows.fedavg import FedAvg

log = logging.getLogger("fedra.workflows.secagg")


class SecAggFedAvg(FedAvg):
    """Federated averaging with secure aggregation of the updates.

    Secure aggregation arguments (see :class:`fedra.secagg.SecAggConfig`): ``clip`` (values
    of an update are clipped to ``[-clip, clip]``), ``bits`` (quantization: the average comes
    back within ``clip / (2**(bits-1) - 1) / 2``), ``modulus_bits`` (32 or 64),
    ``weighted`` (weight by the sites' ``num_samples``, kept secret, at most ``max_weight``),
    ``degree`` (neighbours per site; default: all up to 16 sites, ~2 log2 n above) and
    ``threshold`` (shares needed to recover a secret; default: a strict majority of its
    holders). Every other argument is FedAvg's; the ``aggregator`` must stay ``weighted``.
    A global model (an initial model from the persistor) is required.
    """

    name = "SecAggFedAvg"

    def __init__(
        self,
        clip: float = 1.0,
        bits: int = 24,
        modulus_bits: int = 64,
        weighted: bool = True,
        max_weight: int = 1 << 20,
        degree: int | None = None,
        threshold: int | None = None,
        **fedavg_args: Any,
    ) -> None:
        aggregator = fedavg_args.get("aggregator", "weighted")
        if aggregator != "weighted":
            raise ValueError(
                f"{self.name} sees only the sum of the updates: aggregator must be 'weighted', "
                f"got {aggregator!r}"
            )
        super().__init__(**fedavg_args)
        try:
            self.config = SecAggConfig(
                clip=clip,
                bits=bits,
                modulus_bits=modulus_bits,
                weighted=weighted,
                max_weight=max_weight,
                degree=degree,
                threshold=threshold,
            )
        except SecAggError as exc:
            raise ValueError(str(exc)) from exc

    def _run_round(self, ctx: WorkflowContext, round_num: int) -> None:
        sites = ctx.fleet.sites()
        if len(sites) < self.min_clients:
            raise WorkflowError(
                f"round {round_num}: {len(sites)} sites connected, "
                f"min_clients is {self.min_clients}"
            )
        if self._global is None:
            raise WorkflowError(
                f"{self.name} needs an initial global model (the persistor's initial model): "
                "secure aggregation sums vectors of a size known in advance"
            )
        targets = self._sample(sites, round_num)
        trained_from = self._global
        server = SecAggServer(targets, self.config, vector_length(trained_from))
        ctx.events.round_started(self.name, round_num, self.num_rounds, len(targets))
        self._stage(ctx, server, TASK_ADVERTISE, server.advertise_request().to_model(round_num))
        server.advance()
        self._stage(ctx, server, TASK_SHARE_KEYS, server.share_keys_request().to_model(round_num))
        server.advance()
        request = server.masked_input_request(self._train_data(round_num), self.train_task_name)
        metrics = WeightedAggregator()
        self._stage(ctx, server, TASK_MASKED_INPUT, request.to_model(), metrics, round_num)
        del request
        server.advance()
        self._stage(ctx, server, TASK_UNMASK, server.unmask_request().to_model(round_num))
        outcome = server.result()
        if len(outcome.survivors) < self.min_clients:
            raise WorkflowError(
                f"round {round_num}: {len(outcome.survivors)} masked updates arrived, "
                f"min_clients is {self.min_clients}"
            )
        site_metrics = metrics.metrics()
        update = FLModel(
            params=split_vector(outcome.mean, trained_from),
            params_type=ParamsType.DIFF,
            metrics=site_metrics,
        )
        if is_better(
            site_metrics.get(self.key_metric or ""), self._best, self.higher_is_better is not False
        ):
            self._best = float(site_metrics[self.key_metric or ""])
            best = FLModel(
                params=readonly(trained_from), metrics=site_metrics, current_round=round_num - 1
            )
            ctx.store.save("best", best)
        self._global = self._next_global(update)
        received = f"round-{round_num - 1:03d}" if round_num > 1 else "initial"
        secagg = {
            "survivors": outcome.survivors,
            "dropped": outcome.dropped,
            "threshold": server.threshold,
            "quantization_step": self.config.quantizer.step,
        }
        ctx.store.save(
            f"round-{round_num:03d}",
            FLModel(
                params=self._global,
                current_round=round_num,
                meta={
                    "site_metrics": site_metrics,
                    "site_metrics_describe": received,
                    "secagg": secagg,
                },
            ),
        )
        self._round = round_num
        ctx.events.round_finished(self.name, round_num, site_metrics)
        ctx.checkpoint(self.snapshot())

    def _stage(
        self,
        ctx: WorkflowContext,
        server: SecAggServer,
        task_name: str,
        data: FLModel,
        metrics: WeightedAggregator | None = None,
        round_num: int = 0,
    ) -> None:
        """Send one stage's request and hand every answer to ``server``; a site that fails
        or does not answer drops out of the round."""
        targets = server.targets()
        results = ctx.fleet.broadcast(
            task_name,
            data,
            targets,
            min_responses=min(self.min_clients, len(targets)),
            wait_after_min=self.wait_after_min,
            timeout=self.task_timeout,
        )
        for result in results:
            if not result.ok:
                reason = _last_line(result.error or "")
                log.warning("%s dropped out at %s: %s", result.site, task_name, reason)
                server.drop(result.site, reason)
                continue
            reply = server.accept(result.site, result.data)
            if metrics is not None and reply is not None:
                metrics.accept(FLModel(metrics=reply.metrics))
                ctx.events.result_received(self.name, round_num, result.site)
            del result, reply


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "failed"
