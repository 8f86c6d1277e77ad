"""Federation benchmark Executor: ``params + 1``, timed where the site sees the model.

A plain :class:`fedra.client.Executor` subclass, called directly by the site job process
(no script, no Client API queues). Besides the "training" it appends one JSON line per
train task to ``bench_marks.jsonl`` in the site's job folder (``ctx.workdir``):

* ``enter``: wall-clock time (``time.time()``) when the task reached the executor, i.e. the
  model has crossed server job -> server parent -> gRPC/mTLS -> site parent -> site job and
  has been decoded;
* ``exit``: wall-clock time right before the result is returned (it then travels back).

All processes of the benchmark run on one machine, so these times compare directly with the
time stamps of the server job's log.
"""

from __future__ import annotations

import json
import time

import numpy as np

from fedra import FLModel
from fedra.client import Executor, SiteContext

MARKS_FILE = "bench_marks.jsonl"


class TimedAddOneExecutor(Executor):
    """Returns ``params + 1`` with ``num_samples = site index + 1`` and a ``bench_score``
    metric equal to the round for ``train``."""

    def execute(self, task_name: str, data: FLModel, ctx: SiteContext) -> FLModel:
        """Do one task and record when it arrived and when its result left."""
        entered = time.time()
        params = data.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
        if task_name != "train":
            first = next(iter(params.values()))
            return FLModel(metrics={"first_weight": float(first.flat[0])})
        updated = {name: value + 1 for name, value in params.items()}
        del params
        mark = {
            "site": ctx.site_name,
            "round": data.current_round,
            "enter": entered,
            "exit": time.time(),
        }
        with open(ctx.workdir / MARKS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(mark) + "\n")
        # bench_score rises every round: with best-model tracking on (``--key-metric``) every
        # round's model becomes the best one, so best.npz is written every round.
        return FLModel(
            params=updated,
            metrics={"bench_score": float(data.current_round or 0)},
            meta={"num_samples": ctx.site_index + 1},
        )
