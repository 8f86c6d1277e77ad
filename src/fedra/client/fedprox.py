"""FedProx's proximal term (Li et al., "Federated Optimization in Heterogeneous Networks",
MLSys 2020), for PyTorch training scripts.

Adding ``(mu/2) * ||w - w_global||^2`` to the local loss keeps each site's model close to the
global model it received, which limits client drift when the sites' data differ. The server
side is FedAvg's averaging; the ``FedProx`` workflow also sends ``mu`` to the sites in each
training task's meta, read here by :func:`received_mu`. torch is imported only when
:func:`proximal_term` runs: the core install has no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from fedra.core import FLModel

if TYPE_CHECKING:
    import torch

#: Meta key of a training task carrying ``mu``; the same string as
#: ``fedra.workflows.FEDPROX_MU``.
FEDPROX_MU = "fedprox_mu"


def received_mu(model: FLModel, default: float | None = None) -> float:
    """The ``mu`` a ``FedProx`` workflow sent with this task, else ``default``.

    Raises ValueError when the task carries no ``mu`` and no default is given, or when the
    value is not a finite number >= 0.
    """
    value = model.meta.get(FEDPROX_MU, default)
    if value is None:
        raise ValueError(
            f"the task has no meta['{FEDPROX_MU}'] (not sent by a FedProx workflow) "
            "and no default was given"
        )
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"mu must be a finite number >= 0, got {value!r}")
    return float(value)


def proximal_term(
    model: torch.nn.Module,
    global_params: Mapping[str, torch.Tensor | np.ndarray],
    mu: float,
) -> torch.Tensor:
    """``(mu/2) * sum ||w - w_global||^2`` over the trainable parameters of ``model``.

    Usage in a training loop, with ``global_params`` the params of the model received this
    round (``flare.receive().params``)::

        loss = criterion(net(x), y) + proximal_term(net, global_params, mu)
        loss.backward()

    The gradient with respect to each trainable ``w`` is ``mu * (w - w_global)``; the global
    params are constants (never part of the graph). Numpy arrays are converted on every call:
    for speed, convert them once per round to tensors on the model's device.

    Names: every trainable parameter (``requires_grad``) of ``model`` must be in
    ``global_params`` with the same shape, else KeyError / ValueError (a mismatch there is
    almost always a renamed model, e.g. a ``module.`` prefix). Entries of ``global_params``
    that name no trainable parameter (buffers such as BatchNorm statistics, frozen layers)
    are ignored. ``mu`` must be >= 0; ``mu = 0`` gives 0.
    """
    import torch

    if isinstance(mu, bool) or not isinstance(mu, int | float) or not math.isfinite(mu) or mu < 0:
        raise ValueError(f"mu must be a finite number >= 0, got {mu!r}")
    total: torch.Tensor | None = None
    for name, w in model.named_parameters():
        if not w.requires_grad:
            continue
        if name not in global_params:
            raise KeyError(f"trainable parameter '{name}' is not in global_params")
        value = global_params[name]
        if isinstance(value, np.ndarray):
            # A copy: received arrays are read-only, which torch.from_numpy warns about.
            value = torch.from_numpy(np.array(value, copy=True))
        ref = value.detach().to(device=w.device, dtype=w.dtype)
        if ref.shape != w.shape:
            raise ValueError(
                f"parameter '{name}' has shape {tuple(w.shape)}, global {tuple(ref.shape)}"
            )
        sq = (w - ref).pow(2).sum()
        total = sq if total is None else total + sq
    if total is None:
        return torch.zeros(())
    return (mu / 2) * total
