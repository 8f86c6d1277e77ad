"""The site side of secure aggregation: an executor that wraps the site's training.

:class:`SecAggClient` answers the four protocol tasks of
:class:`fedra.workflows.SecAggFedAvg` with :class:`fedra.secagg.SecAggSite` and hands every
other task (``validate``, ``submit_model`` …) to the executor it wraps. For the masked-input
task it runs the wrapped executor's training on the global model, turns the result into an
update, quantizes and masks it: only the masked vector leaves the site. The training
metrics travel in the clear; ``num_samples`` does not (it is masked with the update).

In a job config, :class:`SecAggScriptExecutor` is the wrapper around a Client API script::

    {"tasks": ["*"], "class": "SecAggScriptExecutor", "args": {"script": "train.py"}}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict

import numpy as np

from fedra.client.executor import Executor, SiteContext
from fedra.client.script import ScriptExecutor
from fedra.core import FLModel, JsonCompatible, Params, ParamsType
from fedra.secagg import (
    TASK_ADVERTISE,
    TASK_MASKED_INPUT,
    TASK_SHARE_KEYS,
    TASK_UNMASK,
    AdvertiseRequest,
    MaskedInputRequest,
    SecAggError,
    SecAggSite,
    ShareKeysRequest,
    UnmaskRequest,
    split_vector,
    update_vector,
)

if TYPE_CHECKING:  # filters load on first use: a training script need not import them
    from fedra.filters import Filter


#: One entry of ``update_filters``: a built-in filter's name and its arguments.
FilterSpec = TypedDict("FilterSpec", {"class": str, "args": NotRequired[dict[str, JsonCompatible]]})


class SecAggClient(Executor):
    """Answers the secure aggregation tasks around ``executor``, the site's own training.

    ``update_filters`` run on the training result (as a diff against the global model)
    before it is quantized and masked: the place for a site's differential privacy noise,
    which the job's ``task_result_filters`` cannot add once the update is masked.
    """

    def __init__(self, executor: Executor, update_filters: Sequence[Filter] = ()) -> None:
        if not isinstance(executor, Executor):
            raise TypeError(f"SecAggClient wraps a fedra.client.Executor, got {executor!r}")
        self.executor = executor
        self.update_filters = tuple(update_filters)
        self._site: SecAggSite | None = None
        self._rng = np.random.default_rng()

    def check_app(self, custom_dir: Path | None) -> None:
        """Let the wrapped executor check the files it needs."""
        check = getattr(self.executor, "check_app", None)
        if callable(check):
            check(custom_dir)

    def start(self, ctx: SiteContext) -> None:
        """Start the wrapped executor."""
        self._site = SecAggSite(ctx.site_name)
        self.executor.start(ctx)

    def stop(self) -> None:
        """Stop the wrapped executor."""
        self.executor.stop()

    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        """Answer a protocol task, or hand the task to the wrapped executor."""
        site = self._site
        if site is None:
            site = self._site = SecAggSite(ctx.site_name)
        if task_name == TASK_ADVERTISE:
            return site.advertise(AdvertiseRequest.from_model(data)).to_model()
        if task_name == TASK_SHARE_KEYS:
            return site.share_keys(ShareKeysRequest.from_model(data)).to_model()
        if task_name == TASK_MASKED_INPUT:
            return self._masked_input(site, data, ctx)
        if task_name == TASK_UNMASK:
            return site.unmask(UnmaskRequest.from_model(data)).to_model()
        return self.executor.execute(task_name, data, ctx)

    def _masked_input(self, site: SecAggSite, data: FLModel, ctx: SiteContext) -> FLModel:
        if site.index is None or site.config is None:
            raise SecAggError(f"{ctx.site_name}: masked-input request before any advertise")
        request = MaskedInputRequest.from_model(data, recipient=site.index)
        site.receive_shares(request)  # check the shares before spending time on training
        global_params = request.model.params
        if not global_params:
            raise SecAggError("the masked-input request carries no global model")
        result = self.executor.execute(request.train_task, request.model, ctx)
        if not isinstance(result, FLModel):
            raise TypeError(f"executor returned {type(result).__name__}, expected fedra.FLModel")
        filtered = self._filtered(result, global_params, request.model.current_round, ctx)
        vector = update_vector(filtered, global_params)
        weight = result.num_samples if site.config.weighted else 1.0
        return site.mask(vector, weight, result.metrics).to_model()

    def _filtered(
        self, result: FLModel, global_params: Params, round_num: int | None, ctx: SiteContext
    ) -> FLModel:
        if not self.update_filters:
            return result
        diff = split_vector(update_vector(result, global_params), global_params)
        model = FLModel(params=diff, params_type=ParamsType.DIFF, metrics=dict(result.metrics))
        from fedra.filters import FilterContext

        fctx = FilterContext(ctx.site_name, TASK_MASKED_INPUT, "task_result", round_num, self._rng)
        for f in self.update_filters:
            model = f(model, fctx)
        if model.params_type is not ParamsType.DIFF:
            raise SecAggError("update_filters must return an update (params_type diff)")
        return model


class SecAggScriptExecutor(SecAggClient):
    """:class:`SecAggClient` around a :class:`~fedra.client.ScriptExecutor`.

    Takes the ScriptExecutor's arguments, plus ``update_filters``: built-in filters
    (``{"class": "GaussianPrivacy", "args": {...}}``) applied to the update before masking.
    """

    def __init__(
        self,
        script: str,
        args: Sequence[str] = (),
        launch: str | None = None,
        params_format: str = "numpy",
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        update_filters: list[FilterSpec] | None = None,
    ) -> None:
        inner = ScriptExecutor(script, args, launch, params_format, start_timeout, stop_timeout)
        super().__init__(inner, [_build_filter(spec) for spec in update_filters or []])


def _build_filter(spec: object) -> Filter:
    from fedra.filters import FILTERS

    if not isinstance(spec, dict) or set(spec) - {"class", "args"} or "class" not in spec:
        raise ValueError(
            f"update_filters: each entry is {{'class': ..., 'args': {{...}}}}, got {spec!r}"
        )
    cls = FILTERS.get(str(spec["class"]))
    if cls is None:
        raise ValueError(
            f"update_filters: unknown filter {spec['class']!r}; choose one of {sorted(FILTERS)}"
        )
    args = spec.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"update_filters: args of {spec['class']} must be an object")
    built: Filter = cls(**args)
    return built
