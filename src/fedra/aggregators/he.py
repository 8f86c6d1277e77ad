"""Weighted averaging of CKKS-encrypted models, on a server that cannot read them.

Each site's result arrives encrypted (the ``HEEncrypt`` filter, see :mod:`fedra.he`). The
aggregator reads the server's **public** context (``startup/he_public_context.tenseal``),
multiplies each ciphertext by the site's weight (a plain number) and adds it to a running
sum, one result at a time, as :class:`~fedra.aggregators.WeightedAggregator` does with plain
arrays. The result is still encrypted: the sum, with the total weight recorded as its
divisor, so that the division happens on the sites after decryption (``HEDecrypt``).

Constraints (each refused with a clear error): results must be encrypted, under the key of
the server's context, and full models (``params_type=FULL``): adding an encrypted update to
an encrypted global model would cost a multiplication level every round. Weights and metrics
stay in clear, as with plain FedAvg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from fedra.aggregators.weighted import WeightedAggregator
from fedra.core import FLModel, MetricValue, ParamsType, WireError, WorkflowError
from fedra.he import (
    SERVER_CONTEXT_FILE,
    HEContext,
    HEKeyError,
    Layout,
    check_file_name,
    check_key,
    chunks_of,
    context_path,
    is_encrypted,
    load_context,
    load_vector,
    pack,
)


class HEWeightedAggregator:
    """Weighted sum of encrypted full models (``aggregator: he_weighted`` in FedAvg).

    ``context_file`` is the public context's file name in the server's startup folder, read
    when the workflow hands the aggregator that folder (:meth:`load_keys`). ``context`` gives
    an already loaded public :class:`~fedra.he.HEContext` instead (tests, Python API).
    """

    #: The params it produces are ciphertexts: a workflow must not compute on them.
    encrypted: ClassVar[bool] = True

    def __init__(self, context_file: str = SERVER_CONTEXT_FILE, context: Any = None) -> None:
        self.context_file = check_file_name(context_file)
        self._context: HEContext | None = None
        if context is not None:
            self._use(context)
        self._metrics = WeightedAggregator()
        self._layout: Layout | None = None
        self._acc: list[Any] = []
        self._ref_weight = 0.0
        self._scaled_total = 0.0
        self._total = 0.0

    def _use(self, context: object) -> None:
        if not isinstance(context, HEContext):
            raise ValueError(f"context must be a fedra.he.HEContext, got {type(context).__name__}")
        if context.is_private:
            raise HEKeyError(
                "the server-side HE aggregator was given a context holding the secret key; "
                "it must only have the public context"
            )
        self._context = context

    def load_keys(self, startup_dir: Path | None) -> None:
        """Read the public context from the server's startup folder (refusing a secret one)."""
        path = context_path(startup_dir, self.context_file, "he_weighted aggregator")
        self._use(load_context(path, secret=False))

    @property
    def context(self) -> HEContext | None:
        """The public context the aggregator computes with (None until loaded)."""
        return self._context

    @property
    def count(self) -> int:
        """Number of results accepted (with or without params)."""
        return self._metrics.count

    @property
    def total_weight(self) -> float:
        """Sum of the ``num_samples`` of the results that carried params."""
        return self._total

    def accept(self, model: FLModel) -> None:
        """Fold an encrypted result in: ``sum += (weight / first weight) * ciphertext``."""
        weight = model.num_samples
        if model.params is not None:
            self._check(model)
        self._metrics.accept(FLModel(metrics=model.metrics, meta=model.meta))
        if model.params is None:
            return
        assert self._context is not None
        try:
            layout, chunks = chunks_of(model.params)
            check_key(layout, self._context, "he_weighted aggregator")
        except WireError as exc:
            raise WorkflowError(f"an encrypted result is unusable: {exc}") from exc
        if self._layout is None:
            self._layout = layout
        elif not layout.same_model(self._layout):
            raise WorkflowError(
                "encrypted results describe different models (names, shapes, dtypes or key)"
            )
        self._total += weight
        if weight == 0:
            return  # contributes nothing; multiplying a ciphertext by 0 is wasted work
        if self._ref_weight == 0:
            self._ref_weight = weight  # weights are scaled by the first one: factors near 1
        factor = weight / self._ref_weight
        self._scaled_total += factor
        for index, data in enumerate(chunks):
            try:
                vector = load_vector(self._context, data)
            except WireError as exc:
                raise WorkflowError(f"an encrypted result is unusable: {exc}") from exc
            vector.mul_(factor)
            if index < len(self._acc):
                self._acc[index].add_(vector)
            else:
                self._acc.append(vector)

    def _check(self, model: FLModel) -> None:
        if self._context is None:
            raise WorkflowError(
                "he_weighted aggregator: no HE context loaded (the workflow gives it the "
                "server's startup folder; none was known)"
            )
        if not is_encrypted(model.params):
            raise WorkflowError(
                "he_weighted aggregator: a result arrived unencrypted; add HEEncrypt to the "
                "job's task_result_filters"
            )
        if model.params_type != ParamsType.FULL:
            raise WorkflowError(
                "he_weighted aggregator: results must be full models (params_type=FULL), got "
                f"{model.params_type}; the server cannot add an encrypted update to an "
                "encrypted global model without spending a multiplication level per round"
            )

    def metrics(self) -> dict[str, MetricValue]:
        """Weighted mean of each numeric metric (metrics travel in clear)."""
        return self._metrics.metrics()

    def result(self) -> FLModel:
        """The encrypted weighted sum, with the total (scaled) weight as its divisor."""
        params = None
        if self._layout is not None:
            if self._scaled_total <= 0:
                raise WorkflowError("every result had num_samples = 0: nothing to average")
            layout = Layout(
                self._layout.fingerprint,
                self._layout.names,
                self._layout.shapes,
                self._layout.dtypes,
                (),
                self._layout.slots,
                self._scaled_total,
            )
            params = pack(layout, [v.serialize() for v in self._acc])
            self._acc = []
        return FLModel(
            params=params,
            params_type=ParamsType.FULL,
            metrics=self.metrics(),
            meta={"num_results": self.count, "total_weight": self._total, "encrypted": True},
        )
