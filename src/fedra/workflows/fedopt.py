"""FedOpt: FedAvg with a server optimizer (Reddi et al., "Adaptive Federated Optimization",
ICLR 2021).

Each round is FedAvg's round, except for the last step: the weighted average of the results is
not taken as the new global model. The pseudo-gradient ``delta = average - global`` is handed
to a server optimizer instead:

- ``sgdm`` (FedAvgM): ``v = beta1*v + delta``; ``x += lr*v``
- ``adam``: ``m = beta1*m + (1-beta1)*delta``; ``v = beta2*v + (1-beta2)*delta**2``
- ``yogi``: as adam, but ``v = v - (1-beta2)*delta**2*sign(v - delta**2)``
- ``adagrad``: as adam, but ``v = v + delta**2``

and, for the three adaptive ones, ``x += lr*m/(sqrt(v)+tau)``. As in the paper there is no bias
correction and ``v`` starts at ``tau**2``. The maths runs in float64 per array; the new global
array is cast back to the array's dtype, and the optimizer state (float64, one buffer per param
for sgdm, two for the others) is part of the snapshot.

Two cases fall back to FedAvg's plain average: a round with no global model yet (round 1 of a
job without an initial model), and params of a non-float dtype (counters, integer buffers).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np

from fedra.core import Array, FLModel, Params, Snapshot, WorkflowError
from fedra.workflows.fedavg import FedAvg

Optimizer = Literal["sgdm", "adam", "yogi", "adagrad"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)

#: Snapshot array-name prefixes: the global model, the first and the second moment.
_X, _M, _V = "x:", "m:", "v:"


class FedOpt(FedAvg):
    """FedAvg whose server applies the averaged update through ``optimizer``.

    ``server_lr`` defaults to 1.0 for ``sgdm`` (with ``beta1=0`` this is FedAvg exactly) and
    to 0.01 for the adaptive optimizers. ``beta2`` and ``tau`` are unused by ``sgdm``. Every
    other argument (``num_rounds``, ``min_clients`` …) is FedAvg's, passed by keyword.
    """

    name = "FedOpt"
    #: Set by the aliases (FedAdam …): the optimizer they always use.
    fixed_optimizer: ClassVar[Optimizer | None] = None

    def __init__(
        self,
        optimizer: Optimizer | None = None,
        server_lr: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        **fedavg_args: Any,
    ) -> None:
        super().__init__(**fedavg_args)
        fixed = self.fixed_optimizer
        if fixed is not None and optimizer not in (None, fixed):
            raise ValueError(f"{self.name} always uses optimizer '{fixed}', got {optimizer!r}")
        chosen = fixed or optimizer or "adam"
        if chosen not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {chosen!r}")
        self.optimizer: Optimizer = chosen
        lr = (1.0 if chosen == "sgdm" else 0.01) if server_lr is None else server_lr
        if not _finite(lr) or lr <= 0:
            raise ValueError(f"server_lr must be > 0, got {server_lr!r}")
        for arg, value in (("beta1", beta1), ("beta2", beta2)):
            if not _finite(value) or not 0 <= value < 1:
                raise ValueError(f"{arg} must be in [0, 1), got {value!r}")
        if not _finite(tau) or tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        self.server_lr = float(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.tau = float(tau)
        self._m: dict[str, Array] = {}
        self._v: dict[str, Array] = {}

    def _next_global(self, update: FLModel) -> Params:
        """One server optimizer step per round, on the aggregate of the round."""
        return self._server_step(super()._next_global(update))

    def _server_step(self, average: Params) -> Params:
        """The new global model: the optimizer step on ``average - global`` per float param."""
        if not self._global:
            return average  # nothing to step from: the average is the first global model
        stepped: Params = {}
        for name, avg in average.items():
            x = self._global.get(name)
            if x is None or not np.issubdtype(avg.dtype, np.floating):
                stepped[name] = avg
                continue
            if x.shape != avg.shape:
                raise WorkflowError(
                    f"param '{name}' has shape {avg.shape}, the global model {x.shape}"
                )
            stepped[name] = self._step(name, x, avg)
        return stepped

    def _step(self, name: str, x: Array, avg: Array) -> Array:
        x64 = x.astype(np.float64)
        delta = avg.astype(np.float64) - x64
        if self.optimizer == "sgdm":
            v = self._v.get(name)
            v = delta if v is None else self.beta1 * v + delta
            self._v[name] = v
            new = x64 + self.server_lr * v
        else:
            m = self._m.get(name)
            v = self._v.get(name)
            if m is None or v is None:
                m, v = np.zeros_like(delta), np.full_like(delta, self.tau**2)
            m = self.beta1 * m + (1 - self.beta1) * delta
            sq = delta * delta
            if self.optimizer == "adam":
                v = self.beta2 * v + (1 - self.beta2) * sq
            elif self.optimizer == "yogi":
                v = v - (1 - self.beta2) * sq * np.sign(v - sq)
            else:  # adagrad
                v = v + sq
            self._m[name], self._v[name] = m, v
            new = x64 + self.server_lr * m / (np.sqrt(v) + self.tau)
        return new.astype(avg.dtype)

    def snapshot(self) -> Snapshot:
        """FedAvg's snapshot plus the optimizer state (written out: no ``arrays_ref``)."""
        base = super().snapshot()
        arrays = {_X + k: a for k, a in base.arrays.items()}
        arrays.update({_M + k: a for k, a in self._m.items()})
        arrays.update({_V + k: a for k, a in self._v.items()})
        state = dict(base.state, optimizer=self.optimizer)
        return Snapshot(workflow=base.workflow, state=state, arrays=arrays)

    def restore(self, snapshot: Snapshot) -> None:
        """Resume after the round of ``snapshot``, optimizer state included."""
        saved = snapshot.state.get("optimizer")
        if snapshot.workflow == self.name and saved != self.optimizer:
            raise WorkflowError(
                f"cannot restore a {self.name} with optimizer '{self.optimizer}' "
                f"from one with optimizer {saved!r}"
            )

        def part(prefix: str) -> dict[str, Array]:
            n = len(prefix)
            return {k[n:]: a for k, a in snapshot.arrays.items() if k.startswith(prefix)}

        super().restore(Snapshot(snapshot.workflow, snapshot.state, part(_X)))
        self._m = {k: a.astype(np.float64) for k, a in part(_M).items()}
        self._v = {k: a.astype(np.float64) for k, a in part(_V).items()}


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and bool(np.isfinite(float(value)))
    )


class FedAvgM(FedOpt):
    """FedOpt with server momentum (``optimizer="sgdm"``)."""

    name = "FedAvgM"
    fixed_optimizer = "sgdm"


class FedAdam(FedOpt):
    """FedOpt with the Adam server optimizer."""

    name = "FedAdam"
    fixed_optimizer = "adam"


class FedYogi(FedOpt):
    """FedOpt with the Yogi server optimizer."""

    name = "FedYogi"
    fixed_optimizer = "yogi"


class FedAdagrad(FedOpt):
    """FedOpt with the Adagrad server optimizer."""

    name = "FedAdagrad"
    fixed_optimizer = "adagrad"
