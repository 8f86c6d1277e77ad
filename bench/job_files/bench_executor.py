"""Benchmark Executor: the same "training" as bench_train.py, without a script thread.

A plain :class:`fedra.client.Executor` subclass: the site's worker calls :meth:`execute`
directly, so the figures show the runtime's own overhead (task board, worker pool,
aggregation, model store) without the Client API's queues and script threads.
"""

from __future__ import annotations

import numpy as np

from fedra import FLModel
from fedra.client import Executor, SiteContext


class AddOneExecutor(Executor):
    """Returns ``params + 1`` for ``train``, a metric for any other task."""

    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        """Do one task."""
        params = data.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
        if task_name != "train":
            first = next(iter(params.values()))
            return FLModel(metrics={"first_weight": float(first.flat[0])})
        updated = {name: value + 1 for name, value in params.items()}
        return FLModel(params=updated, meta={"num_samples": ctx.site_index + 1})
