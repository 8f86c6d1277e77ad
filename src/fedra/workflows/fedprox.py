"""FedProx's server side (Li et al., "Federated Optimization in Heterogeneous Networks",
MLSys 2020): FedAvg that tells the sites the proximal weight ``mu``.

The aggregation is FedAvg's. What differs is on the sites: each adds
``(mu/2) * ||w - w_global||^2`` to its local loss (see :func:`fedra.client.proximal_term`).
This workflow puts ``mu`` in the meta of every training task (key :data:`FEDPROX_MU`), so
the sites' scripts read it from the task (:func:`fedra.client.received_mu`) instead of
each site configuring its own.
"""

from __future__ import annotations

import math
from typing import Any

from fedra.core import FLModel
from fedra.workflows.fedavg import FedAvg

#: Meta key of a training task that carries FedProx's ``mu``.
FEDPROX_MU = "fedprox_mu"


class FedProx(FedAvg):
    """FedAvg whose training tasks carry ``mu`` (``meta["fedprox_mu"]``).

    ``mu`` >= 0 (0: plain FedAvg training on the sites); the paper tunes it in
    {0.001, 0.01, 0.1, 1}. Every other argument is FedAvg's, passed by keyword.
    """

    name = "FedProx"

    def __init__(self, mu: float = 0.01, **fedavg_args: Any) -> None:
        super().__init__(**fedavg_args)
        if isinstance(mu, bool) or not isinstance(mu, int | float) or not math.isfinite(mu):
            raise ValueError(f"mu must be a finite number >= 0, got {mu!r}")
        if mu < 0:
            raise ValueError(f"mu must be a finite number >= 0, got {mu!r}")
        self.mu = float(mu)

    def _train_data(self, round_num: int) -> FLModel:
        """FedAvg's task data with ``mu`` in its meta."""
        data = super()._train_data(round_num)
        data.meta[FEDPROX_MU] = self.mu
        return data
