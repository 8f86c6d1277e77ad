"""SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated
Learning", ICML 2020): FedAvg with control variates that correct each site's drift.

The server keeps the global model ``x`` and a server control variate ``c`` (one array per
float param, zeros at the start). Each training task carries both: ``x`` under the params'
own names and ``c`` under the same names prefixed with :data:`CONTROL_PREFIX`; the task's
meta names the prefix (key :data:`SCAFFOLD_META`), so a site knows the task is a SCAFFOLD
one. Each site (see :class:`fedra.client.ScaffoldHelper`) trains with its gradients corrected
by ``c - c_i``, and answers with a diff: ``dy = y_i - x`` under the params' names and
``dc = c_i_new - c_i`` under the prefixed names. The server then sets

- ``x += server_lr * mean(dy)``
- ``c += (|S| / N) * mean(dc)``

with ``|S|`` the number of results of the round and ``N`` the number of sites connected.
``mean`` is the round's aggregator: by default FedAvg's mean weighted by ``num_samples``
(sites reporting equal ``num_samples``, or none, give the paper's plain mean).

The maths runs in float64 per array; the new ``x`` and ``c`` are cast back to the param's
dtype. Non-float params (integer counters) get no control variate and take the plain
aggregated diff. ``c`` is part of the snapshot, so a resumed run gives the same model bit
for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedra.core import Array, FLModel, Params, ParamsType, Snapshot, WorkflowError, readonly
from fedra.workflows.fedavg import FedAvg

#: Prefix of the control-variate params in SCAFFOLD tasks and results.
CONTROL_PREFIX = "scaffold_c:"
#: Meta key of a SCAFFOLD training task; its value is :data:`CONTROL_PREFIX`.
SCAFFOLD_META = "scaffold_control_prefix"

#: Snapshot array-name prefixes: the global model and the server control variate.
_X, _C = "x:", "c:"


class Scaffold(FedAvg):
    """FedAvg with SCAFFOLD's server and site control variates.

    ``server_lr`` is the paper's global step size ``eta_g`` (1.0: the new model is the old
    one plus the mean diff). Every other argument (``num_rounds``, ``min_clients``,
    ``sample_fraction`` …) is FedAvg's, passed by keyword. The job needs an initial global
    model (from its persistor): the control variates take its shapes.
    """

    name = "Scaffold"

    def __init__(self, server_lr: float = 1.0, **fedavg_args: Any) -> None:
        super().__init__(**fedavg_args)
        if (
            isinstance(server_lr, bool)
            or not isinstance(server_lr, int | float)
            or not np.isfinite(server_lr)
            or server_lr <= 0
        ):
            raise ValueError(f"server_lr must be a finite number > 0, got {server_lr!r}")
        self.server_lr = float(server_lr)
        self._c: Params = {}
        self._num_sites = 0

    def _train_data(self, round_num: int) -> FLModel:
        """The global model plus the server control variate, under :data:`CONTROL_PREFIX`."""
        if not self._global:
            raise WorkflowError(
                "Scaffold needs an initial global model (give the job's persistor one)"
            )
        clash = sorted(k for k in self._global if k.startswith(CONTROL_PREFIX))
        if clash:
            raise WorkflowError(
                f"param names {clash[:3]} start with '{CONTROL_PREFIX}', "
                "the prefix Scaffold reserves for its control variates"
            )
        if not self._c:
            self._c = {
                k: np.zeros_like(a)
                for k, a in self._global.items()
                if np.issubdtype(a.dtype, np.floating)
            }
        params = readonly(self._global)
        params.update({CONTROL_PREFIX + k: a for k, a in readonly(self._c).items()})
        return FLModel(
            params=params,
            meta={SCAFFOLD_META: CONTROL_PREFIX},
            current_round=round_num,
            total_rounds=self.num_rounds,
        )

    def _sample(self, sites: list[str], round_num: int) -> list[str]:
        self._num_sites = len(sites)  # N in c += |S|/N * mean(dc)
        return super()._sample(sites, round_num)

    def _next_global(self, update: FLModel) -> Params:
        """``x += server_lr * mean(dy)`` and ``c += |S|/N * mean(dc)``."""
        assert self._global is not None and update.params is not None
        if update.params_type != ParamsType.DIFF:
            raise WorkflowError(
                "Scaffold needs diffs from the sites (params_type 'diff', with control "
                "variate updates): train with fedra.client.ScaffoldHelper"
            )
        expected = set(self._global) | {CONTROL_PREFIX + k for k in self._c}
        if set(update.params) != expected:
            missing = sorted(expected - set(update.params))
            extra = sorted(set(update.params) - expected)
            raise WorkflowError(
                f"Scaffold results do not match the task: missing {missing[:5]}, "
                f"unexpected {extra[:5]} (train with fedra.client.ScaffoldHelper)"
            )
        for name, x in self._global.items():
            if update.params[name].shape != x.shape:
                raise WorkflowError(
                    f"param '{name}' has shape {update.params[name].shape}, "
                    f"the global model {x.shape}"
                )
        results = int(update.meta.get("num_results", self._num_sites))
        scale = min(1.0, results / max(self._num_sites, 1))
        new_x: Params = {}
        for name, x in self._global.items():
            dy = update.params[name]
            if np.issubdtype(x.dtype, np.floating):
                step = self.server_lr * dy.astype(np.float64)
                new_x[name] = (x.astype(np.float64) + step).astype(x.dtype)
            else:
                new_x[name] = (x + dy).astype(x.dtype)
        new_c: Params = {}
        for name, c in self._c.items():
            dc = update.params[CONTROL_PREFIX + name].astype(np.float64)
            new_c[name] = (c.astype(np.float64) + scale * dc).astype(c.dtype)
        self._c = new_c  # new arrays: sites may still hold views of the old ones
        return new_x

    def snapshot(self) -> Snapshot:
        """FedAvg's snapshot plus ``c`` (written out: no ``arrays_ref``)."""
        base = super().snapshot()
        arrays = {_X + k: a for k, a in base.arrays.items()}
        arrays.update({_C + k: a for k, a in self._c.items()})
        return Snapshot(workflow=base.workflow, state=dict(base.state), arrays=arrays)

    def restore(self, snapshot: Snapshot) -> None:
        """Resume after the round of ``snapshot``, server control variate included."""

        def part(prefix: str) -> dict[str, Array]:
            n = len(prefix)
            return {k[n:]: a for k, a in snapshot.arrays.items() if k.startswith(prefix)}

        super().restore(Snapshot(snapshot.workflow, snapshot.state, part(_X)))
        self._c = {k: np.array(a, copy=True) for k, a in part(_C).items()}
